"""A state change (a unit leaving its range, an alert) alters the stats' counts, not their 24 h
compliance: the stats are rebuilt before the event is sent, the counts counted again and the
compliance taken from its kept state (which the same uplink's reading updated first), and the
three counts refreshed from them. Every dashboard refetching on the event hits, and what it reads
equals a fresh computation."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from stats import selectors, services
from stats.cache import QueryType, cache_key
from stats.models import Unit
from tests import factories
from tests.conftest import metric
from tests.realtime.conftest import minutes, uplink

pytestmark = pytest.mark.django_db

COUNTS = (QueryType.UNITS_STATUS, QueryType.ALERTS_COUNT, QueryType.DEVICES_ONLINE)


def _fresh_stats(org) -> dict:
    data = json.loads(services.json_bytes(selectors.organization_stats(org_id=org.id)))
    data.pop("lastUpdated")
    return data


def _cached(redis_client, key) -> dict | None:
    raw = redis_client.get(key)
    if raw is None:
        return None
    data = json.loads(raw)
    data.pop("lastUpdated", None)
    return data


def _computed(how: str) -> float:
    return metric(f"dashboard_cache_{how}_total", query_type="stats")


@pytest.fixture
def watched(site, post):
    """Readings through the webhook, then the stats and the three counts cached."""
    start = timezone.now() - minutes(30)
    for i, device in enumerate(site.devices):
        assert post(uplink(device.dev_eui, 4.0 + i, at=start)).json()["status"] == "stored"
    for path in ("stats", "units/status", "alerts/count", "devices/online"):
        assert site.client.get(f"/api/orgs/{site.org.id}/{path}").status_code == 200
    return site


def test_an_excursion_rebuilds_the_stats_from_the_compliance_state_and_refreshes_the_counts(
    watched, post, redis_client
):
    org = watched.org
    rebuilt, recomputed = _computed("rebuilt"), _computed("recompute")
    with CaptureQueriesContext(connection) as queries:
        body = post(uplink(watched.devices[0].dev_eui, 12.0)).json()
    assert {"unitUpdate", "alertCreated"} <= set(body["events"])
    assert (_computed("rebuilt"), _computed("recompute")) == (rebuilt + 1, recomputed)
    # No 24 h aggregation of readings ran for the stats: the only reading queries are the uplink's.
    grouped = [
        q["sql"] for q in queries.captured_queries if "stats_temperaturereading" in q["sql"] and "GROUP BY" in q["sql"]
    ]
    assert grouped == []

    stats = _cached(redis_client, cache_key(QueryType.STATS, org.id))
    assert stats == _fresh_stats(org)
    assert stats["unitCounts"]["warning"] == 1 and stats["alertCounts"]["unresolved"] == 1
    for query in COUNTS:  # refreshed from the rebuilt stats: the refetches hit
        assert json.loads(redis_client.get(cache_key(query, org.id))) == stats[query_field(query)]
    # The excursion's own reading is in the compliance (updated in the state before the rebuild).
    assert stats["compliancePercentage"] == 66.67


def query_field(query: QueryType) -> str:
    from stats import queries

    return queries.by_name(str(query)).part_of[1]


def test_a_compliance_state_missing_a_units_newest_reading_is_not_used(watched, post, redis_client):
    """A reading whose update of the state was lost: the stats are computed whole instead."""
    unit = watched.units[1]
    lost = factories.reading(unit, 30.0)
    Unit.objects.filter(pk=unit.pk).update(latest_reading_id=lost.id, last_reading_at=lost.recorded_at)
    rebuilt, recomputed = _computed("rebuilt"), _computed("recompute")
    post(uplink(watched.devices[0].dev_eui, 12.0))
    assert (_computed("rebuilt"), _computed("recompute")) == (rebuilt, recomputed + 1)
    stats = _cached(redis_client, cache_key(QueryType.STATS, watched.org.id))
    assert stats == _fresh_stats(watched.org)
    assert stats["compliancePercentage"] == 50.0  # 4.0 and 5.0 in range; 30.0 and 12.0 out
