"""After every uplink's answer, every cached figure equals a fresh computation, the 24 h
compliance included: several server processes take uplinks (readings that change no state and
readings that do) while others serve dashboards polling every cached endpoint; the test then reads
each cached key straight from Redis and computes its value from the database.

With readings' in-place updates switched off (the stats then keep their compliance until the
TTL), the same run finds stale figures: the test can fail.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from django.test import Client, override_settings
from django.utils import timezone

from stats import cache, selectors, windowed
from stats.cache.boundary import client as redis_client
from stats.cache.keys import state_key
from stats.models import Role, Unit
from stats.windows import ComplianceState, TrendState
from tests import factories
from tests.live import LiveServer, start_daphne

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

_f_cnt = itertools.count(1_000)
ENDPOINTS = ["stats", "units/status", "alerts/count", "devices/online"]


def _fresh(key: cache.CacheKey) -> object:
    org, unit = key.org_id, key.unit_id
    by_type = {
        "stats": lambda: selectors.organization_stats(org_id=org),
        "units:status": lambda: selectors.unit_status_counts(org_id=org),
        "alerts:count": lambda: selectors.alert_counts(org_id=org, unit_id=unit),
        "devices:online": lambda: selectors.device_online_counts(org_id=org),
        "temperature:trends": lambda: selectors.unit_trend(org_id=org, unit_id=unit),
    }
    return by_type[key.query_type]()


def _comparable(value: object) -> object:
    return {k: v for k, v in value.items() if k != "lastUpdated"} if isinstance(value, dict) else value


def _state_agrees(key: cache.CacheKey) -> bool | None:
    """Whether the state kept beside a windowed value equals a fresh one (None: no state). Tells a
    stale value beside a good state (a write race) from a state that missed a change."""
    raw = redis_client().get(state_key(key))
    if raw is None:
        return None
    now = timezone.now()
    if key.query_type == "stats":
        kept, fresh = ComplianceState.loads(raw), windowed.compliance_state(org_id=key.org_id, now=now)
    else:
        kept, fresh = TrendState.loads(raw), windowed.trend_state(unit=Unit.objects.get(id=key.unit_id), now=now)
    kept.slide(now)
    return kept == fresh


def stale_entries(org) -> list[tuple[str, object, object, str]]:
    """(key, cached, fresh, whether its kept state agrees) for every cached figure that differs."""
    found = []
    for raw in cache.scan_keys(f"dashboard:*:org:{org.id}*") or []:
        key = cache.parse_dashboard_key(raw)
        cached = cache.get(key)
        if cached is None:
            continue
        kept, fresh = _comparable(json.loads(cached)), _comparable(_fresh(key))
        if kept != fresh:
            found.append((raw, kept, fresh, f"state agrees: {_state_agrees(key)}"))
    return found


def _uplink(dev_eui: str, temperature: float) -> dict:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    message = {"f_cnt": next(_f_cnt), "decoded_payload": {"temperature": temperature}, "received_at": now}
    return {"end_device_ids": {"dev_eui": dev_eui}, "received_at": now, "uplink_message": message}


@pytest.fixture(params=["tests.settings", "tests.settings_without_updates"], ids=["updates", "switched-off"])
def fleet(request, django_db_blocker, tmp_path) -> Iterator[tuple[list[LiveServer], list[LiveServer]]]:
    """Two server processes taking uplinks, one serving dashboards."""
    env = {"DJANGO_SETTINGS_MODULE": request.param, "ALARM_CONFIRM_DELAY_SECONDS": "0", "RESTORE_STABLE_SECONDS": "0"}
    started: list[LiveServer] = []
    try:
        with django_db_blocker.unblock():
            for _ in range(3):
                started.append(start_daphne(tmp_path, extra_env=env))
        yield started[:2], started[2:]
    finally:
        for server in started:
            server.stop()


@override_settings(ALARM_CONFIRM_DELAY_SECONDS=0, RESTORE_STABLE_SECONDS=0)
def test_every_cached_figure_equals_a_fresh_computation_after_each_uplinks_answer(fleet, request):
    ingest, dashboards = fleet
    org = factories.organization("Exact")
    units = [factories.unit(org, temp_min=2.0, temp_max=8.0) for _ in range(4)]
    devices = [factories.device(unit) for unit in units]
    client = Client()
    client.force_login(factories.member(org, role=Role.VIEWER))
    cookie = client.cookies["sessionid"].value
    paths = ENDPOINTS + [f"alerts/count?unit={u.id}" for u in units] + [f"units/{u.id}/trends" for u in units]
    stop, errors = threading.Event(), []

    def poll(server: LiveServer) -> None:
        with httpx.Client(base_url=server.url, cookies={"sessionid": cookie}, timeout=10) as http:
            while not stop.is_set():
                if http.get(f"/api/orgs/{org.id}/{random.choice(paths)}").status_code != 200:
                    errors.append("poll")

    def post(server: LiveServer, device, temperature: float) -> None:
        response = httpx.post(f"{server.url}/api/webhooks/ttn", json=_uplink(device.dev_eui, temperature),
                              headers={"X-Webhook-Secret": org.webhook_secret}, timeout=10)  # fmt: skip
        if response.json().get("status") != "stored":
            errors.append(response.text)

    pollers = [threading.Thread(target=poll, args=(s,)) for s in dashboards for _ in range(2)]
    for poller in pollers:
        poller.start()
    stale: list = []
    rng = random.Random(7)
    try:
        # One uplink at a time, each checked the moment it is answered: in range (no state change)
        # most of the time, and excursions and returns (state changes) now and then.
        for i in range(40):
            temperature = rng.choice([4.0, 4.5, 5.0, 5.5, 6.0, 12.0, 1.0])
            post(ingest[i % 2], devices[i % len(devices)], temperature)
            stale += stale_entries(org)
            if stale:
                break
        # Uplinks from both ingest processes at once; checked once both are answered.
        for _ in range(10 if not stale else 0):
            batch = [
                (ingest[k], devices[k + 2 * (rng.random() < 0.5)], rng.choice([4.2, 5.1, 6.3, 13.0])) for k in (0, 1)
            ]
            senders = [threading.Thread(target=post, args=args) for args in batch]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
            stale += stale_entries(org)
    finally:
        stop.set()
        for poller in pollers:
            poller.join()
    assert errors == []
    if "switched-off" in request.node.callspec.id:
        assert stale, "with the updates off the stats keep an old compliance: the check must see it"
    else:
        assert stale == []
