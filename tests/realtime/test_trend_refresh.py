"""A reading refreshes its unit's cached trend before the event is sent, instead of leaving the
next poll of every open dashboard a miss; units nobody has cached cost nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from realtime import broadcast, events
from stats import cache
from stats.cache import QueryType, cache_key
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
