"""A reading refreshes its unit's cached trend once, before the event is sent, instead of
leaving the next poll of every open dashboard a miss; a poll that misses during the refresh
waits for that value; units nobody has cached cost nothing."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from realtime import broadcast, events
from stats import cache, selectors
from stats.cache import QueryType, cache_key, readthrough
from tests import factories
from tests.conftest import metric

pytestmark = pytest.mark.django_db


def _trends_url(unit) -> str:
    return f"/api/orgs/{unit.organization_id}/units/{unit.id}/trends"


@pytest.fixture
def watched(db):
    org = factories.organization()
    unit = factories.unit(org)
    member = factories.member(org)

    client = Client()
    client.force_login(member)
    return unit, client


def test_a_reading_of_a_watched_unit_refreshes_its_trend_and_the_next_poll_is_a_hit(watched, redis_client):
    unit, client = watched
    now = timezone.now()
    factories.reading(unit, 4.0, at=now)
    before = client.get(_trends_url(unit)).json()["points"]
    assert [p["temperature"] for p in before] == [4.0]

    factories.reading(unit, 8.0, at=now)  # same 15-minute bucket
    key = cache_key(QueryType.TEMPERATURE_TRENDS, unit.organization_id, unit.id)
    generation_before = redis_client.get(f"dashmeta:gen:{key}")
    recomputes = metric("dashboard_cache_recompute_total", query_type="temperature:trends")
    broadcast.emit([events.reading(unit, 8.0, now)])
    assert metric("dashboard_cache_recompute_total", query_type="temperature:trends") == recomputes + 1
    assert redis_client.get(f"dashmeta:gen:{key}") != generation_before  # the delete still bumped it

    misses = metric("dashboard_cache_miss_total", query_type="temperature:trends")
    recomputes = metric("dashboard_cache_recompute_total", query_type="temperature:trends")
    response = client.get(_trends_url(unit))
    assert metric("dashboard_cache_miss_total", query_type="temperature:trends") == misses
    assert metric("dashboard_cache_recompute_total", query_type="temperature:trends") == recomputes
    assert [p["temperature"] for p in response.json()["points"]] == [6.0]
    assert 58 <= redis_client.ttl(key) <= 60


def test_a_poll_that_misses_during_the_refresh_waits_for_it(watched, redis_client, monkeypatch):
    """The reader misses while the emitter recomputes (the key is deleted, the emitter holds its
    lock): it is served the emitter's value and computes nothing itself."""
    unit, client = watched
    now = timezone.now()
    factories.reading(unit, 4.0, at=now)
    client.get(_trends_url(unit))
    factories.reading(unit, 8.0, at=now)
    key = cache_key(QueryType.TEMPERATURE_TRENDS, unit.organization_id, unit.id)

    waiting = threading.Event()
    original_wait = readthrough._wait_for_value

    def wait_for_value(*args):
        waiting.set()
        return original_wait(*args)

    monkeypatch.setattr(readthrough, "_wait_for_value", wait_for_value)
    reader_computed, answers = [], []

    def reader() -> None:  # a dashboard's poll, on its own thread, as in another worker
        answers.append(cache.read_through(key, lambda: reader_computed.append(1) or b"{}"))

    thread = threading.Thread(target=reader)
    original_trends = selectors.temperature_trends

    def trends(**kwargs):  # the emitter's recompute, its lock taken
        thread.start()
        assert waiting.wait(5)  # the reader missed and is waiting
        return original_trends(**kwargs)

    monkeypatch.setattr(selectors, "temperature_trends", trends)
    served = metric("dashboard_cache_singleflight_wait_total", query_type="temperature:trends", outcome="served")
    recomputes = metric("dashboard_cache_recompute_total", query_type="temperature:trends")
    broadcast.emit([events.reading(unit, 8.0, now)])
    thread.join(5)

    assert answers == [redis_client.get(key)]
    assert [p["temperature"] for p in json.loads(answers[0])["points"]] == [6.0]
    assert reader_computed == []
    assert metric("dashboard_cache_recompute_total", query_type="temperature:trends") == recomputes + 1
    assert (
        metric("dashboard_cache_singleflight_wait_total", query_type="temperature:trends", outcome="served")
        == served + 1
    )


def test_a_reading_of_a_unit_nobody_cached_computes_nothing(watched, redis_client):
    unit, _ = watched
    factories.reading(unit, 4.0, at=timezone.now() - timedelta(minutes=1))
    recomputes = metric("dashboard_cache_recompute_total", query_type="temperature:trends")
    broadcast.emit([events.reading(unit, 4.0, timezone.now())])
    assert metric("dashboard_cache_recompute_total", query_type="temperature:trends") == recomputes
    assert redis_client.keys("dashboard:*") == []


def test_a_refresh_that_fails_leaves_the_key_deleted_and_the_event_still_goes_out(watched, redis_client):
    unit, client = watched
    client.get(_trends_url(unit))
    errors = metric("dashboard_broadcast_errors_total", stage="refresh")
    sent = metric("dashboard_events_sent_total", event="reading")
    unit_id, org_id = unit.id, unit.organization_id
    unit.delete()  # the refresh's unit lookup now fails: UnitNotFound
    broadcast.emit([events.Event(events.EventType.READING, org_id, unit_id, {"unitId": str(unit_id)})])
    assert metric("dashboard_broadcast_errors_total", stage="refresh") == errors + 1
    assert metric("dashboard_events_sent_total", event="reading") == sent + 1
    assert redis_client.get(cache_key(QueryType.TEMPERATURE_TRENDS, org_id, unit_id)) is None
    assert cache.is_enabled()
