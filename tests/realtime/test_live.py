"""WebSocket and multi-instance behaviour against real daphne processes (acceptance 2, 6, 7)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import httpx
import pytest
from django.test import Client
from django.utils import timezone
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from stats.models import Role, new_webhook_secret
from stats.windows import bucket_of, iso, window_start
from tests import factories
from tests.live import LiveServer, free_port, next_event, start_daphne
from tests.realtime.conftest import uplink

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two daphne instances sharing PostgreSQL/SQLite and Redis."""
    logs = tmp_path_factory.mktemp("daphne")
    env = {"RESTORE_STABLE_SECONDS": "0", "ALARM_CONFIRM_DELAY_SECONDS": "600"}
    with django_db_blocker.unblock():
        a = start_daphne(logs, extra_env=env)
        try:
            b = start_daphne(logs, extra_env=env)
        except Exception:
            a.stop()
            raise
    yield a, b
    a.stop()
    b.stop()


@dataclass
class World:
    org: object
    other: object
    devices: list
    other_device: object
    member_cookie: str
    outsider_cookie: str


def _session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.fixture
def world(transactional_db) -> World:
    org, other = factories.organization("Live"), factories.organization("Elsewhere")
    devices = [factories.device(factories.unit(org)) for _ in range(2)]
    other_device = factories.device(factories.unit(other))
    member = factories.member(org, role=Role.MANAGER)
    outsider = factories.member(other)
    return World(org, other, devices, other_device, _session_cookie(member), _session_cookie(outsider))


def ws(server: LiveServer, org, cookie: str | None) -> ClientConnection:
    headers = {"Origin": server.url}
    if cookie:
        headers["Cookie"] = f"sessionid={cookie}"
    return connect(f"{server.ws_url}/ws/orgs/{org.id}/", additional_headers=headers, open_timeout=5)


def close_code(conn: ClientConnection) -> int:
    with conn, pytest.raises(ConnectionClosed) as closed:
        while True:
            conn.recv(timeout=5)
    return closed.value.rcvd.code


def post_uplink(server: LiveServer, org, body: dict) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/webhooks/ttn", json=body, headers={"X-Webhook-Secret": org.webhook_secret}, timeout=10
    )


def api(server: LiveServer, cookie: str, path: str) -> dict:
    response = httpx.get(f"{server.url}{path}", cookies={"sessionid": cookie}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_anonymous_and_non_members_are_refused_with_distinct_close_codes(servers, world):
    a, _ = servers
    assert close_code(ws(a, world.org, None)) == 4401
    assert close_code(ws(a, world.org, world.outsider_cookie)) == 4403
    with ws(a, world.org, world.member_cookie) as conn:
        assert next_event(conn, "hello")["data"] == {"organizationId": str(world.org.id)}


def test_a_burst_of_connects_beyond_the_redis_pools_default_all_get_their_hello(servers, world):
    """A reconnect storm: 150 dashboards connect to one instance at once (redis-py's asyncio pool
    refuses a 101st connection by default, and each connect holds one for its group_add)."""
    server, _ = servers

    async def one() -> str:
        async with aconnect(
            f"{server.ws_url}/ws/orgs/{world.org.id}/", open_timeout=20,
            additional_headers={"Origin": server.url, "Cookie": f"sessionid={world.member_cookie}"},
        ) as conn:  # fmt: skip
            return json.loads(await asyncio.wait_for(conn.recv(), 20))["type"]

    async def burst() -> list:
        return await asyncio.gather(*(one() for _ in range(150)), return_exceptions=True)

    results = asyncio.run(burst())
    assert [r for r in results if r != "hello"] == []


def test_a_foreign_origin_is_refused(servers, world):
    a, _ = servers
    headers = {"Origin": "http://evil.example", "Cookie": f"sessionid={world.member_cookie}"}
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{a.ws_url}/ws/orgs/{world.org.id}/", additional_headers=headers, open_timeout=5)
    assert refused.value.response.status_code == 403


def test_members_receive_their_own_organizations_events_only(servers, world):
    a, _ = servers
    with ws(a, world.org, world.member_cookie) as mine, ws(a, world.other, world.outsider_cookie) as theirs:
        next_event(mine, "hello")
        next_event(theirs, "hello")
        assert post_uplink(a, world.org, uplink(world.devices[0].dev_eui, 4.0)).status_code == 200
        assert post_uplink(a, world.other, uplink(world.other_device.dev_eui, 4.5)).status_code == 200
        assert next_event(mine, "reading")["data"]["temperature"] == 4.0
        # The other organization's first event is its own reading, never ours.
        first = json.loads(theirs.recv(timeout=5))
        assert first["type"] == "reading" and first["data"]["temperature"] == 4.5


def test_a_client_refetching_the_moment_it_hears_an_event_always_gets_the_new_numbers(servers, world):
    # The uplink is posted from another thread and the refetch goes to the other instance, so the
    # refetch really races the emitting request (inside one daphne process sync views run one at
    # a time, and waiting for the POST's response would let the emitter finish first).
    a, b = servers
    stats_path = f"/api/orgs/{world.org.id}/stats"
    stale = 0
    with ws(a, world.org, world.member_cookie) as conn, ThreadPoolExecutor(1) as poster:
        next_event(conn, "hello")
        for i in range(50):
            hot = i % 2 == 0
            assert api(b, world.member_cookie, stats_path)["unitCounts"]["warning"] == (0 if hot else 1)  # cached
            sent = poster.submit(post_uplink, a, world.org, uplink(world.devices[0].dev_eui, 12.0 if hot else 5.0))
            next_event(conn, "unitUpdate")
            stats = api(b, world.member_cookie, stats_path)
            expected = (1, 1) if hot else (0, 0)
            stale += (stats["unitCounts"]["warning"], stats["alertCounts"]["unresolved"]) != expected
            assert "unitUpdate" in sent.result(timeout=10).json()["events"]
    assert stale == 0


def test_an_uplink_to_instance_a_reaches_a_client_of_instance_b_and_b_serves_the_new_numbers(servers, world):
    a, b = servers
    stats_path = f"/api/orgs/{world.org.id}/stats"
    assert api(b, world.member_cookie, stats_path)["unitCounts"]["warning"] == 0  # cached via B
    with ws(b, world.org, world.member_cookie) as conn:
        next_event(conn, "hello")
        assert post_uplink(a, world.org, uplink(world.devices[1].dev_eui, 15.0)).status_code == 200
        assert next_event(conn, "alertCreated")["data"]["triggerTemperature"] == 15.0
        assert api(b, world.member_cookie, stats_path)["unitCounts"]["warning"] == 1


def test_a_reading_event_carries_what_changed_in_its_trend_and_stats_as_the_cache_then_has_it(servers, world):
    """What lets the page paint a reading's trend and compliance without refetching them
    (dashboard.js paint): the event's trend point is the reading's bucket in the trend the other
    instance serves right after, and its compliance and time are the stats' then, both what the
    database gives; each with the key's generation before and after, in line from one reading to
    the next. A value that was not cached had nothing updated in place: no patch for it (the page
    fetches it)."""
    a, b = servers
    unit_id, dev_eui = world.devices[0].unit_id, world.devices[0].dev_eui
    trend_path = f"/api/orgs/{world.org.id}/units/{unit_id}/trends"
    stats_path = f"/api/orgs/{world.org.id}/stats"
    with ws(b, world.org, world.member_cookie) as conn:
        next_event(conn, "hello")
        assert post_uplink(a, world.org, uplink(dev_eui, 4.0)).status_code == 200
        assert "patches" not in next_event(conn, "reading")["data"]
        api(b, world.member_cookie, trend_path)  # now cached, and the stats
        api(b, world.member_cookie, stats_path)
        sent = []
        for temperature in (4.5, 6.25, 3.75):
            starts = {iso(window_start(timezone.now()))}  # and after: the window may move meanwhile
            assert post_uplink(a, world.org, uplink(dev_eui, temperature)).status_code == 200
            data = next_event(conn, "reading")["data"]
            trend, stats = data["patches"]["temperature:trends"], data["patches"]["stats"]
            served = api(b, world.member_cookie, trend_path)["points"]
            recorded = datetime.fromisoformat(data["recordedAt"].replace("Z", "+00:00"))
            assert trend["point"] == next(p for p in served if p["timestamp"] == iso(bucket_of(recorded)))
            assert trend["windowStart"] in starts | {iso(window_start(timezone.now()))}
            served_stats = api(b, world.member_cookie, stats_path)
            assert (stats["compliancePercentage"], stats["lastUpdated"]) == (
                served_stats["compliancePercentage"], served_stats["lastUpdated"]
            )  # fmt: skip
            sent.append((trend, stats))
        for (trend, stats), (next_trend, next_stats) in zip(sent, sent[1:], strict=False):
            assert (next_trend["after"], next_stats["after"]) == (trend["at"], stats["at"])
            assert (trend["at"], stats["at"]) == (trend["after"] + 1, stats["after"] + 1)
    # What the database gives (asked last: `?refresh=1` stores its value, a write of the key).
    assert api(b, world.member_cookie, f"{trend_path}?refresh=1")["points"] == served
    fresh = api(b, world.member_cookie, f"{stats_path}?refresh=1")
    assert fresh["compliancePercentage"] == stats["compliancePercentage"]


def test_a_secret_rotated_elsewhere_is_refused_by_an_instance_that_held_it_at_once(servers, world):
    """Each instance keeps a tracked copy of a secret's organization (every uplink asks); the
    rotation's deletion of the cached answer reaches that copy before the next uplink."""
    a, b = servers
    old = world.org.webhook_secret
    for server in (a, b, a, b):  # each cached, then served from its copy
        assert post_uplink(server, world.org, uplink(world.devices[0].dev_eui)).status_code == 200

    world.org.webhook_secret = new_webhook_secret()
    world.org.save(update_fields=["webhook_secret"])  # this process: the database, then the deletion

    for server in (a, b):
        refused = httpx.post(
            f"{server.url}/api/webhooks/ttn", json=uplink(world.devices[0].dev_eui),
            headers={"X-Webhook-Secret": old}, timeout=10,
        )  # fmt: skip
        assert refused.status_code == 401, refused.text
        assert post_uplink(server, world.org, uplink(world.devices[0].dev_eui)).status_code == 200


def test_with_the_database_down_health_the_webhook_and_the_api_answer_503(tmp_path, db):
    server = start_daphne(tmp_path, extra_env={"DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/test"})
    try:
        health = httpx.get(f"{server.url}/health", timeout=10)
        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"
        webhook = httpx.post(
            f"{server.url}/api/webhooks/ttn", json=uplink("70B3D57E00000001"), headers={"X-Webhook-Secret": "x" * 43}
        )
        assert webhook.status_code == 503
        assert webhook.json()["error"].startswith("database unavailable")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            client.cookies.set("sessionid", "no-such-session")
            stats = client.get("/api/orgs/00000000-0000-4000-8000-000000000001/stats")
        assert stats.status_code == 503
        assert stats.json() == {"error": "database unavailable, retry later"}
    finally:
        server.stop()


def test_the_simulator_posts_uplinks_the_server_stores(servers, world):
    from django.core.management import call_command

    from stats.models import TemperatureReading

    a, _ = servers
    world.org.slug = "sim-live"
    world.org.save()
    call_command("simulate_ttn", url=a.url, count=12, rate=100, orgs="sim-", seed=1, stdout=io.StringIO())
    assert TemperatureReading.objects.filter(organization=world.org).count() == 12
    assert TemperatureReading.objects.exclude(organization=world.org).count() == 0
