"""A 24 h figure (a unit's trend, the organization's compliance) changes every 15 minutes, when
its oldest bucket leaves the window, with no reading or event to tell the cache. Its cached value
expires at that boundary, whatever its TTL: read a moment after, it is computed (or rebuilt) for
the new window instead of showing a bucket that left it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from realtime import broadcast, events
from stats.cache import QueryType, cache_key, ttl
from stats.windows import ms_to_next_bucket
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.window_boundary]


def _boundary_ms() -> int:
    return ms_to_next_bucket(datetime.now(UTC))


@pytest.fixture
def watched(db):
    org = factories.organization()
    unit = factories.unit(org)
    client = Client()
    client.force_login(factories.member(org))
    return org, unit, client


def _read_all(org, unit, client) -> None:
    for path in ("stats", f"units/{unit.id}/trends", "units/status"):
        assert client.get(f"/api/orgs/{org.id}/{path}").status_code == 200


@override_settings(CACHE_TTL_SECONDS=3600)  # longer than a bucket: only the boundary can end it sooner
def test_a_windowed_value_expires_at_the_next_boundary_and_the_others_at_their_ttl(watched, redis_client):
    org, unit, client = watched
    factories.reading(unit, 4.0)
    for _ in range(2):  # a boundary passing during the reads would blur the bounds: read again then
        before = _boundary_ms()
        _read_all(org, unit, client)
        after = _boundary_ms()
        if after <= before:
            break
    windowed = [cache_key(QueryType.STATS, org.id), cache_key(QueryType.TEMPERATURE_TRENDS, org.id, unit.id)]
    for key in windowed:
        assert after - 1000 <= redis_client.pttl(key) <= before, key
    assert redis_client.pttl(cache_key(QueryType.UNITS_STATUS, org.id)) > 3600_000 - 5000


@override_settings(CACHE_TTL_SECONDS=3600)
def test_a_value_updated_in_place_by_a_reading_expires_at_the_next_boundary_too(watched, redis_client):
    org, unit, client = watched
    first = factories.reading(unit, 4.0)
    _read_all(org, unit, client)
    newest = factories.reading(unit, 5.0, at=timezone.now())
    before = _boundary_ms()
    broadcast.emit([events.reading(unit, newest, first.id)])
    after = _boundary_ms()
    key = cache_key(QueryType.TEMPERATURE_TRENDS, org.id, unit.id)
    assert redis_client.get(key) is not None  # updated, not dropped
    assert after - 1000 <= redis_client.pttl(key) <= before  # (a boundary within the emit's ms: 1 in 10^5)


def test_a_reading_renews_the_counts_that_are_fields_of_the_stats_once_they_used_half_their_ttl(
    watched, redis_client, monkeypatch
):
    """The three counts are fields of the stats; no change alters one without deleting it, so a
    count still cached equals the stats' field and lives as long as the stats it is part of."""
    monkeypatch.setattr(ttl, "ms_to_next_bucket", lambda now: 900_000)  # no boundary nearby
    org, unit, client = watched
    first = factories.reading(unit, 4.0)
    _read_all(org, unit, client)
    counts = cache_key(QueryType.UNITS_STATUS, org.id)
    redis_client.pexpire(counts, 20_000)  # 40 of its 60 s used
    untouched = cache_key(QueryType.DEVICES_ONLINE, org.id)
    assert client.get(f"/api/orgs/{org.id}/devices/online").status_code == 200
    redis_client.pexpire(untouched, 50_000)  # 10 of 60 s used: left alone (an expire drops tracked copies)
    newest = factories.reading(unit, 5.0)
    broadcast.emit([events.reading(unit, newest, first.id)])
    stats_left = redis_client.pttl(cache_key(QueryType.STATS, org.id))
    assert stats_left > 20_000
    assert stats_left - 1000 <= redis_client.pttl(counts) <= stats_left
    assert redis_client.pttl(untouched) <= 50_000
