"""Behind Redis Sentinel, the app rides out a failover, with the tracked copies on.

One master, one replica and three sentinels on private ports, shared by the module's tests (a
set-up takes seconds). First a failover that keeps the old master alive (Sentinel demotes it and
closes its clients), with dashboards polling one instance while uplinks change the value on
another: once it is over no answer is older than the last change, no request fails and the copies
serve again. Then the master SIGKILLed under an uplink stream: cache hits (from the copies) and
events come back without restarting the app, and every accepted uplink is in the database. After
each, the tracked connection and the channel layer are on the new master.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from django.conf import settings
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from stats import selectors, services
from stats.models import Role, TemperatureReading
from tests import factories
from tests.faults.load import Load, UplinkStream
from tests.faults.processes import RedisProcess, sample, scrape, stop_all, wait_for
from tests.live import LiveServer, start_daphne
from tests.realtime.conftest import uplink

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

MASTER = "mymaster"
SENTINEL_CONF = """\
sentinel monitor {master} 127.0.0.1 {port} 2
sentinel down-after-milliseconds {master} 1000
sentinel failover-timeout {master} 3000
sentinel parallel-syncs {master} 1
"""
# A demoted master resyncs from the new one at once (the default waits 5 s for more replicas).
NO_SYNC_DELAY = ["--repl-diskless-sync-delay", "0"]


def _sentinel_view(sentinel: RedisProcess) -> dict:
    return redis.Redis(port=sentinel.port, socket_timeout=1, decode_responses=True).sentinel_master(MASTER)


def _master_port(sentinel: RedisProcess) -> int | None:
    address = redis.Redis(port=sentinel.port, socket_timeout=1).sentinel_get_master_addr_by_name(MASTER)
    return int(address[1]) if address else None


@dataclass
class Sentinels:
    servers: list[RedisProcess]
    sentinels: list[RedisProcess]

    def master(self) -> RedisProcess:
        port = _master_port(self.sentinels[0])
        return next(server for server in self.servers if server.port == port)

    def replica(self) -> RedisProcess:
        master = self.master()
        return next(server for server in self.servers if server is not master)

    def env(self) -> dict[str, str]:
        return {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels),
            "REDIS_SENTINEL_MASTER": MASTER,
            "REDIS_URL": "redis://127.0.0.1:1",  # unused with sentinels: a wrong one proves it
            "CACHE_NEAR_MAX_MB": "32",
            "METRICS_TOKEN": "",
        }

    def wait_ready(self) -> None:
        """Every sentinel names the same master, knows the others and a replica in sync: what a
        failover needs (a quorum that knows the replica, a majority that knows each other)."""

        def ready() -> bool:
            master = self.master()
            replica = redis.Redis(port=self.replica().port, socket_timeout=1).info("replication")
            return replica.get("master_link_status") == "up" and all(
                (v := _sentinel_view(s))["num-other-sentinels"] == 2
                and v["num-slaves"] == 1
                and v["port"] == master.port
                and not v["is_sdown"]
                for s in self.sentinels
            )

        wait_for(ready, timeout=30, what="the sentinels to agree on a master with a replica in sync", every=0.2)

    def start_failover(self) -> bool:
        """`SENTINEL FAILOVER`: promote the replica while the master is up; False while the sentinel
        does not yet count the replica as fit to promote."""
        try:
            return bool(redis.Redis(port=self.sentinels[0].port).execute_command("SENTINEL", "FAILOVER", MASTER))
        except redis.ResponseError as exc:
            if str(exc).startswith("NOGOODSLAVE"):
                return False
            raise


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory) -> Iterator[Sentinels]:
    directory: Path = tmp_path_factory.mktemp("sentinel")
    master = RedisProcess(directory / "a", extra_args=NO_SYNC_DELAY)
    replica = RedisProcess(directory / "b", extra_args=[*NO_SYNC_DELAY, "--replicaof", "127.0.0.1", str(master.port)])
    conf = SENTINEL_CONF.format(master=MASTER, port=master.port)
    watchers = [RedisProcess(directory / f"sentinel{i}", config=conf, extra_args=["--sentinel"]) for i in range(3)]
    try:
        for process in (master, replica, *watchers):
            process.start()
        for watcher in watchers:
            # Sentinel's own timers, shortened with SENTINEL DEBUG (Redis 7+): it waits four
            # publish periods after a failover before it demotes an old master that is still up
            # (8 s by default), and learns of role changes by INFO every info period.
            try:
                redis.Redis(port=watcher.port).execute_command(
                    "SENTINEL", "DEBUG", "publish-period", 250, "info-period", 500
                )
            except redis.ResponseError:  # an older Sentinel: the same, only slower
                pass
        yield Sentinels([master, replica], watchers)
    finally:
        stop_all(*watchers, replica, master)


def _clients(server: RedisProcess, *, db: int) -> list[dict]:
    return [c for c in redis.Redis(port=server.port).client_list() if int(c["db"]) == db]


def _app_clients(server: RedisProcess) -> dict[str, int]:
    """The app's connections to `server`: the caches', the tracked ones among them, the channel layer's."""
    cache = _clients(server, db=settings.REDIS_CACHE_DB)
    return {
        "cache": len(cache),
        "tracking": sum("t" in c["flags"] for c in cache),
        "channels": len(_clients(server, db=settings.REDIS_CHANNELS_DB)),
    }


def _near_hits(server: LiveServer) -> float:
    return sample(scrape(server), "dashboard_cache_near_total", outcome="hit")


def _trend_max(body: bytes) -> float:
    return max((point["max"] for point in json.loads(body)["points"]), default=-math.inf)


def _member_cookie(org) -> str:
    client = Client()
    client.force_login(factories.member(org, role=Role.VIEWER))
    return client.cookies["sessionid"].value


def test_through_a_failover_that_keeps_the_old_master_alive_no_copy_older_than_the_last_change_is_served(
    sentinels, tmp_path
):
    sentinels.wait_ready()
    old, new = sentinels.master(), sentinels.replica()
    org = factories.organization("Failover")
    unit = factories.unit(org)
    device = factories.device(unit)
    cookie = _member_cookie(org)
    trend = f"/api/orgs/{org.id}/units/{unit.id}/trends"  # the value every reading changes

    dashboards = ingest = None
    try:
        # Uplinks reach one instance and dashboards poll the other: the copies there learn of a
        # change only from Redis's invalidation pushes (a process's own changes drop its copies).
        dashboards = start_daphne(tmp_path, extra_env=sentinels.env())
        ingest = start_daphne(tmp_path, extra_env=sentinels.env())
        rising = UplinkStream(
            ingest, secret=org.webhook_secret, dev_eui=device.dev_eui, every=0.1, temperature=lambda n: 3 + n / 100
        )
        with rising as stream, Load(dashboards, cookie=cookie, paths=[trend], clients=2, pause=0.01) as polls:
            wait_for(lambda: _near_hits(dashboards) > 0, timeout=10, what="the dashboards served from copies")
            wait_for(sentinels.start_failover, timeout=10, what="a sentinel to start a failover")
            started = time.monotonic()
            # Sentinel promotes the replica, then demotes the old master (which until then takes
            # the writes of the clients still connected to it) and closes its clients.
            wait_for(
                lambda: redis.Redis(port=old.port).role()[0] == b"slave" and sentinels.master() is new,
                timeout=30,
                what="Sentinel to promote the replica and demote the old master",
                every=0.1,
            )
            demoted = time.monotonic()
            # The changes accepted by the old master after the promotion are lost with it (its
            # invalidations included: Redis's own values may be that old, up to the TTL); the
            # window ends with the first change made on the new master.
            settled = wait_for(
                lambda: next((p.answered for p in stream.posts if p.sent > demoted and p.status == 200), None),
                timeout=10,
                what="an uplink through the new master",
            )
            hits = _near_hits(dashboards)
            wait_for(
                lambda: _near_hits(dashboards) > hits and len(polls.between(settled, time.monotonic())) >= 50,
                timeout=15,
                what="copies served again after the failover",
                every=0.1,
            )
        served = httpx.get(f"{dashboards.url}{trend}", cookies={"sessionid": cookie}, timeout=10)
        on_new_master, on_old_master = _app_clients(new), _app_clients(old)
    finally:
        stop_all(dashboards, ingest)

    acked = [
        (p.answered, p.payload["uplink_message"]["decoded_payload"]["temperature"])
        for p in stream.posts
        if p.status == 200
    ]

    def stale(poll) -> bool:
        """Older than the last change acknowledged before it was sent: the readings rise, so the
        trend's highest point is at least the last acknowledged reading's temperature."""
        before = [t for at, t in acked if at < poll.started]
        return bool(before) and _trend_max(poll.body) < max(before) - 1e-9

    after = [p for p in polls.between(settled, time.monotonic()) if p.status == 200]
    print(
        f"promoted+demoted={demoted - started:.2f}s settled={settled - started:.2f}s uplinks={len(stream.posts)} "
        f"polls={len(polls.samples)} after={len(after)} stale_before_settled="
        f"{sum(stale(p) for p in polls.samples if p.status == 200 and p.started < settled)} "
        f"failed={sum(p.status != 200 for p in polls.samples)} old={on_old_master} new={on_new_master}"
    )
    assert [p.status for p in polls.between(demoted, time.monotonic()) if p.status != 200] == []
    assert [p.f_cnt for p in stream.after(demoted) if p.status != 200] == []
    assert [(p.started - settled, _trend_max(p.body)) for p in after if stale(p)] == []
    fresh = services.json_bytes({"unitId": str(unit.id), "points": selectors.temperature_trends(unit=unit)})
    assert served.status_code == 200 and served.content == fresh  # byte for byte a fresh computation
    # What the exactness needs is on the new master: the tracked copies' connections (one per
    # instance: the polled one's copies of the fast path's keys, the ingest's of the webhook
    # secret's organization), the cache and the channel layer the events go through.
    # (django-redis reads the sessions cache from replicas: such a connection may be on the old
    # master.)
    assert (on_new_master["tracking"], on_old_master["tracking"]) == (2, 0)
    assert on_new_master["channels"] >= 1 and on_old_master["channels"] == 0
    assert on_new_master["cache"] >= 1


@contextmanager
def _ws(server: LiveServer, org, cookie: str) -> Iterator[ClientConnection]:
    headers = {"Origin": server.url, "Cookie": f"sessionid={cookie}"}
    with connect(f"{server.ws_url}/ws/orgs/{org.id}/", additional_headers=headers, open_timeout=5) as conn:
        assert json.loads(conn.recv(timeout=5))["type"] == "hello"
        yield conn


def _reading_arrives(conn: ClientConnection, unit_id: str, temperature: float, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = json.loads(conn.recv(timeout=left))
        except TimeoutError:
            return False
        data = message["data"]
        if message["type"] == "reading" and data["unitId"] == unit_id and data["temperature"] == temperature:
            return True
    return False


def _stats_hits(server: LiveServer) -> float:
    return sample(scrape(server), "dashboard_cache_hit_total", query_type="stats")


def test_after_the_master_dies_the_cache_copies_and_websocket_events_work_again_and_no_uplink_is_lost(
    sentinels, tmp_path
):
    sentinels.wait_ready()
    master, replica = sentinels.master(), sentinels.replica()
    org = factories.organization("Sentinel")
    streamed, probed = (factories.device(factories.unit(org)) for _ in range(2))
    cookie = _member_cookie(org)
    stats = f"/api/orgs/{org.id}/stats"

    server = None
    try:
        server = start_daphne(tmp_path, extra_env=sentinels.env())
        dashboard = httpx.Client(base_url=server.url, cookies={"sessionid": cookie}, timeout=10)

        with UplinkStream(server, secret=org.webhook_secret, dev_eui=streamed.dev_eui, every=0.1) as stream:
            # Through the sentinels before the fault: cache hits, and events reach a browser. The
            # stream's readings (every 0.1 s) change the stats while the GETs read them, and a value
            # still being computed when a reading lands is not kept (the stale-set guard, or the
            # in-place update's conflict rule): a GET may then miss. So the GETs go on until two
            # have hit, at most 20.
            with _ws(server, org, cookie) as conn:
                for _ in range(20):
                    assert dashboard.get(stats).status_code == 200
                    if _stats_hits(server) >= 2:
                        break
                assert _stats_hits(server) >= 2
                assert (
                    httpx.post(
                        f"{server.url}/api/webhooks/ttn",
                        json=uplink(probed.dev_eui, 3.25),
                        headers={"X-Webhook-Secret": org.webhook_secret},
                    ).status_code
                    == 200
                )
                assert _reading_arrives(conn, str(probed.unit_id), 3.25, timeout=5)

                master.kill()
                killed = time.monotonic()
                wait_for(
                    lambda: sentinels.master() is replica,
                    timeout=20,
                    what="the sentinels to promote the replica",
                    every=0.1,
                )
                failover_seconds = time.monotonic() - killed
                old_connection_alive = True
                try:
                    conn.ping().wait(1)
                except (ConnectionClosed, TimeoutError):
                    old_connection_alive = False

            hits, near_hits = _stats_hits(server), _near_hits(server)
            wait_for(
                lambda: (
                    dashboard.get(stats).status_code == 200
                    and _stats_hits(server) > hits
                    and _near_hits(server) > near_hits
                ),
                timeout=10,
                what="cache hits, from the tracked copies, after the failover",
                every=0.1,
            )
            cache_back = time.monotonic() - killed

            # A browser (re)connects and hears a new uplink's event.
            attempts, temperature, delivered = 0, 5.0, False
            deadline = time.monotonic() + 15
            while not delivered and time.monotonic() < deadline:
                attempts += 1
                temperature += 0.25
                try:
                    with _ws(server, org, cookie) as conn:
                        response = httpx.post(
                            f"{server.url}/api/webhooks/ttn",
                            json=uplink(probed.dev_eui, temperature),
                            headers={"X-Webhook-Secret": org.webhook_secret},
                            timeout=10,
                        )
                        assert response.status_code == 200, response.text
                        delivered = _reading_arrives(conn, str(probed.unit_id), temperature, timeout=3)
                except (ConnectionClosed, InvalidStatus, TimeoutError, OSError):
                    time.sleep(0.2)
            events_back = time.monotonic() - killed
            after_failover = len(stream.after(killed + failover_seconds))
        dashboard.close()
        on_new_master = _app_clients(replica)

        posts = stream.posts
        print(
            f"failover={failover_seconds:.2f}s cache_back={cache_back:.2f}s events_back={events_back:.2f}s "
            f"ws_attempts={attempts} old_ws_alive={old_connection_alive} uplinks={len(posts)} "
            f"uplinks_after_failover={after_failover} statuses={sorted({p.status for p in posts})} "
            f"new={on_new_master}"
        )
        assert delivered, f"no event reached a WebSocket client in {attempts} attempts after the failover"
        assert after_failover > 0
        assert [p for p in posts if p.status != 200] == []
        stored = set(TemperatureReading.objects.filter(device=streamed).values_list("uplink_id", flat=True))
        assert {int(uplink_id.split(":")[1]) for uplink_id in stored} == {p.f_cnt for p in posts}
        assert len(stored) == len(posts)
        assert on_new_master["tracking"] == 1 and on_new_master["channels"] >= 1 and on_new_master["cache"] >= 1
    finally:
        stop_all(server)
