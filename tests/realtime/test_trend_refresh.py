"""A reading updates its unit's cached trend in place, before the event is sent, instead of leaving
the next poll of every open dashboard a miss: from the state stored beside the trend, with no
recomputation, to exactly what a recomputation gives. A trend cached without a state is
recomputed once instead, and a poll that misses meanwhile waits for that value; units nobody
has cached cost nothing."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from realtime import broadcast, events
from stats import cache, selectors, services, windowed
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


def _key(unit):
    return cache_key(QueryType.TEMPERATURE_TRENDS, unit.organization_id, unit.id)


def _fresh(unit) -> bytes:
    return services.json_bytes(selectors.unit_trend(org_id=unit.organization_id, unit_id=unit.id))


def test_a_reading_of_a_watched_unit_updates_its_trend_in_place_and_the_next_poll_is_a_hit(watched, redis_client):
    unit, client = watched
    now = timezone.now()
    first = factories.reading(unit, 4.0, at=now)
    before = client.get(_trends_url(unit)).json()["points"]
    assert [p["temperature"] for p in before] == [4.0]

    newest = factories.reading(unit, 8.0, at=now)  # same 15-minute bucket
    key = _key(unit)
    generation_before = redis_client.get(f"dashmeta:gen:{key}")
    recomputes = metric("dashboard_cache_recompute_total", query_type="temperature:trends")
    updated = metric("dashboard_cache_maintained_total", query_type="temperature:trends", outcome="updated")
    broadcast.emit([events.reading(unit, newest, first.id)])
    assert metric("dashboard_cache_recompute_total", query_type="temperature:trends") == recomputes
    assert metric("dashboard_cache_maintained_total", query_type="temperature:trends", outcome="updated") == updated + 1
    assert redis_client.get(f"dashmeta:gen:{key}") != generation_before  # a computation in flight is refused
    assert redis_client.get(key) == _fresh(unit)

    misses = metric("dashboard_cache_miss_total", query_type="temperature:trends")
    response = client.get(_trends_url(unit))
    assert metric("dashboard_cache_miss_total", query_type="temperature:trends") == misses
    assert [p["temperature"] for p in response.json()["points"]] == [6.0]
    assert 58 <= redis_client.ttl(key) <= 60


def test_a_reading_already_in_the_trend_is_not_counted_twice(watched, redis_client):
    """The trend was computed after the reading was committed (its state includes it): the
    reading's update must not add it again."""
    unit, client = watched
    now = timezone.now()
    newest = factories.reading(unit, 5.0, at=now)
    client.get(_trends_url(unit))  # computed with the reading in it
    broadcast.emit([events.reading(unit, newest, None)])
    assert redis_client.get(_key(unit)) == _fresh(unit)
    assert [p["temperature"] for p in json.loads(redis_client.get(_key(unit)))["points"]] == [5.0]


def test_a_poll_that_misses_while_a_stateless_trend_is_recomputed_waits_for_it(watched, redis_client, monkeypatch):
    """A trend cached without a state (as by an earlier version) cannot be updated in place: it is
    deleted and recomputed once, under its single-flight lock. A reader that misses meanwhile is
    served the emitter's value and computes nothing itself."""
    unit, client = watched
    now = timezone.now()
    first = factories.reading(unit, 4.0, at=now)
    newest = factories.reading(unit, 8.0, at=now)
    key = _key(unit)
    assert cache.set(key, b'{"unitId":"old","points":[]}')

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
    original_state = windowed.trend_state

    def trend_state(**kwargs):  # the emitter's recompute, its lock taken
        thread.start()
        assert waiting.wait(5)  # the reader missed and is waiting
        return original_state(**kwargs)

    monkeypatch.setattr(windowed, "trend_state", trend_state)
    served = metric("dashboard_cache_singleflight_wait_total", query_type="temperature:trends", outcome="served")
    recomputes = metric("dashboard_cache_recompute_total", query_type="temperature:trends")
    broadcast.emit([events.reading(unit, newest, first.id)])
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
    newest = factories.reading(unit, 4.0, at=timezone.now() - timedelta(minutes=1))
    recomputes = metric("dashboard_cache_recompute_total", query_type="temperature:trends")
    broadcast.emit([events.reading(unit, newest, None)])
    assert metric("dashboard_cache_recompute_total", query_type="temperature:trends") == recomputes
    assert redis_client.keys("dashboard:*") == []


def test_a_refresh_that_fails_leaves_the_key_deleted_and_the_event_still_goes_out(watched, redis_client):
    unit, _ = watched
    key = _key(unit)
    assert cache.set(key, b'{"unitId":"old","points":[]}')  # no state: the reading's update recomputes
    errors = metric("dashboard_broadcast_errors_total", stage="update")
    sent = metric("dashboard_events_sent_total", event="reading")
    event = events.reading(unit, factories.reading(unit, 4.0), None)
    unit_id, org_id = unit.id, unit.organization_id
    unit.delete()  # the recompute's unit lookup now fails: UnitNotFound
    broadcast.emit([event])
    assert broadcast.sends_flush()
    assert metric("dashboard_broadcast_errors_total", stage="update") == errors + 1
    assert metric("dashboard_events_sent_total", event="reading") == sent + 1
    assert redis_client.get(cache_key(QueryType.TEMPERATURE_TRENDS, org_id, unit_id)) is None
    assert cache.is_enabled()


def test_a_trend_that_missed_an_update_is_recomputed_not_updated(watched, redis_client):
    """A reading whose unit's previous reading is not in the state (its update was lost: a Redis
    failover, a failed write) makes the trend be recomputed from the database: exact again."""
    unit, client = watched
    now = timezone.now()
    first = factories.reading(unit, 4.0, at=now)
    client.get(_trends_url(unit))  # the state holds `first`
    lost = factories.reading(unit, 10.0, at=now)  # its update never reached Redis
    newest = factories.reading(unit, 7.0, at=now)
    recomputes = metric("dashboard_cache_recompute_total", query_type="temperature:trends")
    broadcast.emit([events.reading(unit, newest, lost.id)])
    assert metric("dashboard_cache_recompute_total", query_type="temperature:trends") == recomputes + 1
    assert redis_client.get(_key(unit)) == _fresh(unit)
    assert [p["temperature"] for p in json.loads(redis_client.get(_key(unit)))["points"]] == [7.0]
    assert first.id < lost.id < newest.id


def test_a_unit_reporting_every_ten_minutes_gets_its_expired_trend_rebuilt_from_the_state(watched, redis_client):
    """At a 60 s TTL a trend has expired by the next reading of a sensor that reports every ten
    minutes: the state outlives it (an hour), so the reading rebuilds the trend without the
    database; and the organization's index lives as long, so invalidating the organization still
    deletes the state."""
    unit, client = watched
    now = timezone.now()
    first = factories.reading(unit, 4.0, at=now)
    client.get(_trends_url(unit))
    key = _key(unit)
    state = f"dashmeta:state:{key}"
    assert redis_client.ttl(state) >= 3600 - 5
    assert redis_client.ttl(f"dashmeta:idx:org:{unit.organization_id}") >= 3600 - 5
    redis_client.delete(key)  # what the value's TTL does after 60 s; ten minutes on, the state lives

    newest = factories.reading(unit, 8.0, at=now)
    recomputes = metric("dashboard_cache_recompute_total", query_type="temperature:trends")
    updated = metric("dashboard_cache_maintained_total", query_type="temperature:trends", outcome="updated")
    broadcast.emit([events.reading(unit, newest, first.id)])
    assert metric("dashboard_cache_recompute_total", query_type="temperature:trends") == recomputes
    assert metric("dashboard_cache_maintained_total", query_type="temperature:trends", outcome="updated") == updated + 1
    assert redis_client.get(key) == _fresh(unit)
    assert 58 <= redis_client.ttl(key) <= 60

    redis_client.delete(key)
    cache.invalidate_org(unit.organization_id)
    assert redis_client.exists(state) == 0
