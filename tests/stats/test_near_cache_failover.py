"""Tracked copies (stats/near.py) when the server behind the connection changes, as in a Sentinel
failover: the copies are Redis's word only for the master they were read from. Two private
redis-servers stand for the old and the new master; every change is made by a plain client, as
another process would make it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.connection import Connection

from stats import near
from tests.conftest import metric
from tests.faults.processes import RedisProcess, stop_all

KEY = "dashboard:stats:org:failover"


@pytest.fixture
def servers(tmp_path) -> Iterator[tuple[RedisProcess, RedisProcess]]:
    old, new = RedisProcess(tmp_path / "old").start(), RedisProcess(tmp_path / "new").start()
    yield old, new
    stop_all(old, new)


class _Named:
    """Where Sentinel would send the next connect: redis-py's Sentinel-managed connection asks
    the sentinels for the master's address on every (re)connect, as this one reads `port`."""

    def __init__(self, port: int) -> None:
        self.port = port

    def connection(self) -> Connection:
        named = self

        class Following(Connection):
            def connect(self) -> None:
                self.port = named.port
                super().connect()

        return Following(host="127.0.0.1", port=self.port, protocol=3, socket_timeout=1)


def _copies(master: _Named) -> near.NearCache:
    return near.NearCache(master.connection, max_bytes=2**20)


def _tracking_clients(server: RedisProcess) -> list[dict]:
    return [c for c in redis.Redis(port=server.port).client_list() if "t" in c["flags"]]


def test_a_reconnect_to_another_server_drops_every_copy_and_tracks_the_keys_there(servers):
    old, new = servers
    redis.Redis(port=old.port).set(KEY, b"old master's value")
    redis.Redis(port=new.port).set(KEY, b"new master's value")  # the new master never had the old one's last write
    master = _Named(old.port)
    copies = _copies(master)
    assert copies.get_many([KEY]) == [b"old master's value"]
    assert copies.get_many([KEY]) == [b"old master's value"] and len(copies) == 1  # a copy
    hits = metric("dashboard_cache_near_total", outcome="hit")
    flushes = metric("dashboard_cache_near_flushes_total", reason="reconnect")

    # The failover: Sentinel names the new master and closes the demoted one's clients.
    master.port = new.port
    redis.Redis(port=old.port).client_kill_filter(_type="normal")

    assert copies.get_many([KEY]) == [b"new master's value"]
    assert metric("dashboard_cache_near_total", outcome="hit") == hits  # nothing served from before
    assert metric("dashboard_cache_near_flushes_total", reason="reconnect") == flushes + 1
    assert len(_tracking_clients(new)) == 1 and _tracking_clients(old) == []
    # Tracked there: a change on the new master reaches the copy.
    invalidated = metric("dashboard_cache_near_total", outcome="invalidated")
    redis.Redis(port=new.port).set(KEY, b"changed on the new master")
    assert copies.get_many([KEY]) == [b"changed on the new master"]
    assert metric("dashboard_cache_near_total", outcome="invalidated") == invalidated + 1
    copies.clear()


def test_a_connection_to_a_replica_is_refused_before_anything_is_read(servers):
    master, replica = servers
    redis.Redis(port=master.port).set(KEY, b"value")
    redis.Redis(port=replica.port).replicaof("127.0.0.1", master.port)
    copies = _copies(_Named(replica.port))  # a sentinel that has not heard of a failover yet

    with pytest.raises(near.NotMaster):
        copies.get_many([KEY])

    assert len(copies) == 0
    assert _tracking_clients(replica) == []  # not left connected either


def test_a_master_demoted_without_closing_its_clients_stops_serving_copies_at_the_next_confirmation(
    servers, monkeypatch
):
    old, new = servers
    redis.Redis(port=old.port).set(KEY, b"value")
    copies = _copies(_Named(old.port))
    assert copies.get_many([KEY]) == [b"value"]  # connected, tracked, confirmed a master
    now = near.time.monotonic()
    monkeypatch.setattr(near.time, "monotonic", lambda: now)
    hits = metric("dashboard_cache_near_total", outcome="hit")

    # An operator's REPLICAOF, unlike Sentinel, leaves the clients connected: the connection
    # stays open and quiet, and the changes now made on the new master reach it late if ever.
    redis.Redis(port=old.port).replicaof("127.0.0.1", new.port)
    redis.Redis(port=new.port).set(KEY, b"changed on the new master")
    now += 0.8 * near.CONFIRM_SECONDS
    assert copies.get_many(["dashboard:another"]) == [None]  # a read the replica answers confirms nothing
    now += 0.7 * near.CONFIRM_SECONDS

    with pytest.raises(near.NotMaster):
        copies.get_many([KEY])

    assert len(copies) == 0
    assert metric("dashboard_cache_near_total", outcome="hit") == hits


def test_the_master_check_needs_no_admin_command(servers, monkeypatch):
    """ROLE is an admin command; an application's ACL user is often denied those (-@dangerous)."""
    server, _ = servers
    admin = redis.Redis(port=server.port)
    admin.acl_setuser(
        "app", enabled=True, passwords=["+secret"], keys=["*"], channels=["*"], commands=["+@all", "-@dangerous"]
    )
    admin.set(KEY, b"value")

    def connection() -> Connection:
        return Connection(port=server.port, username="app", password="secret", protocol=3, socket_timeout=1)

    copies = near.NearCache(connection, max_bytes=2**20)
    assert copies.get_many([KEY]) == [b"value"]
    now = near.time.monotonic() + near.CONFIRM_SECONDS + 0.5
    monkeypatch.setattr(near.time, "monotonic", lambda: now)
    hits = metric("dashboard_cache_near_total", outcome="hit")

    assert copies.get_many([KEY]) == [b"value"]  # confirmed a master again, then served from the copy
    assert metric("dashboard_cache_near_total", outcome="hit") == hits + 1
