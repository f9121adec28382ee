"""Issue 7, acceptance 3: behind Redis Sentinel, the app rides out the master's death.

A master, one replica and three sentinels on private ports; the master is SIGKILLed under a steady
uplink stream and dashboard polling. After the failover the cache serves hits again and events
reach browsers, without restarting the app, and every accepted uplink is in the database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import redis
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from stats.models import Role, TemperatureReading
from tests import factories
from tests.faults.load import UplinkStream
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


def _sentinel_view(sentinel: RedisProcess) -> dict:
    return redis.Redis(port=sentinel.port, socket_timeout=1, decode_responses=True).sentinel_master(MASTER)


def _master_port(sentinel: RedisProcess) -> int | None:
    address = redis.Redis(port=sentinel.port, socket_timeout=1).sentinel_get_master_addr_by_name(MASTER)
    return int(address[1]) if address else None


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


def test_after_the_master_dies_the_cache_and_websocket_events_work_again_and_no_uplink_is_lost(
    transactional_db, tmp_path
):
    org = factories.organization("Sentinel")
    streamed, probed = (factories.device(factories.unit(org)) for _ in range(2))
    member = factories.member(org, role=Role.VIEWER)
    client = Client()
    client.force_login(member)
    cookie = client.cookies["sessionid"].value
    stats = f"/api/orgs/{org.id}/stats"

    master = replica = server = None
    sentinels: list[RedisProcess] = []
    try:
        master = RedisProcess(tmp_path / "master").start()
        replica = RedisProcess(tmp_path / "replica", extra_args=["--replicaof", "127.0.0.1", str(master.port)]).start()
        conf = SENTINEL_CONF.format(master=MASTER, port=master.port)
        sentinels = [RedisProcess(tmp_path / f"sentinel{i}", config=conf, extra_args=["--sentinel"]) for i in range(3)]
        for sentinel in sentinels:
            sentinel.start()
        # A failover needs a quorum that knows the replica and a majority that knows each other.
        wait_for(
            lambda: all(
                (v := _sentinel_view(s))["num-other-sentinels"] == 2 and v["num-slaves"] == 1 for s in sentinels
            ),
            timeout=20,
            what="the sentinels to discover the replica and each other",
            every=0.2,
        )
        env = {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{s.port}" for s in sentinels),
            "REDIS_SENTINEL_MASTER": MASTER,
            "REDIS_URL": "redis://127.0.0.1:1",  # unused with sentinels: a wrong one proves it
            "METRICS_TOKEN": "",
        }
        server = start_daphne(tmp_path, extra_env=env)
        dashboard = httpx.Client(base_url=server.url, cookies={"sessionid": cookie}, timeout=10)

        with UplinkStream(server, secret=org.webhook_secret, dev_eui=streamed.dev_eui, every=0.1) as stream:
            # Through the sentinels before the fault: cache hits, and events reach a browser.
            with _ws(server, org, cookie) as conn:
                for _ in range(3):
                    assert dashboard.get(stats).status_code == 200
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
                    lambda: _master_port(sentinels[0]) == replica.port,
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

            hits = _stats_hits(server)
            wait_for(
                lambda: dashboard.get(stats).status_code == 200 and _stats_hits(server) > hits,
                timeout=10,
                what="cache hits after the failover",
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

        posts = stream.posts
        print(
            f"failover={failover_seconds:.2f}s cache_back={cache_back:.2f}s events_back={events_back:.2f}s "
            f"ws_attempts={attempts} old_ws_alive={old_connection_alive} uplinks={len(posts)} "
            f"uplinks_after_failover={after_failover} statuses={sorted({p.status for p in posts})}"
        )
        assert delivered, f"no event reached a WebSocket client in {attempts} attempts after the failover"
        assert after_failover > 0
        assert [p for p in posts if p.status != 200] == []
        stored = set(TemperatureReading.objects.filter(device=streamed).values_list("uplink_id", flat=True))
        assert {int(uplink_id.split(":")[1]) for uplink_id in stored} == {p.f_cnt for p in posts}
        assert len(stored) == len(posts)
    finally:
        stop_all(server, *sentinels, replica, master)
