"""Acceptance 1-3 of the foundation: miss, hit, TTL; byte-identical bodies."""

from __future__ import annotations

import json
import time

import pytest
from django.test import override_settings

from stats import selectors
from tests import factories
from tests.conftest import metric

pytestmark = pytest.mark.django_db


def stats_url(org) -> str:
    return f"/api/orgs/{org.id}/stats"


def test_first_request_is_a_miss_that_stores_the_value_with_the_ttl(dashboard, redis_client):
    key = f"dashboard:stats:org:{dashboard.org_a.id}"
    misses = metric("dashboard_cache_miss_total", query_type="stats")
    recomputes = metric("dashboard_cache_recompute_total", query_type="stats")

    response = dashboard.client.get(stats_url(dashboard.org_a))

    assert response.status_code == 200
    assert metric("dashboard_cache_miss_total", query_type="stats") == misses + 1
    assert metric("dashboard_cache_recompute_total", query_type="stats") == recomputes + 1
    assert redis_client.get(key) == response.content
    assert 58 <= redis_client.ttl(key) <= 60
    body = response.json()
    assert body["unitCounts"] == {
        "normal": 1,
        "warning": 1,
        "critical": 0,
        "offline": 1,
        "too_hot": 1,
        "too_cold": 0,
        "total": 3,
    }
    assert body["alertCounts"] == {"unresolved": 1, "active": 1, "acknowledged": 0, "escalated": 0, "resolved": 1}
    assert body["deviceCounts"] == {"online": 2, "offline": 1}
    # 3 of 5 readings in the last 24 h are inside [2, 8].
    assert body["compliancePercentage"] == 60.0
    assert body["memberCount"] == 1
    assert body["siteCount"] == 1
    assert body["worstState"] == "warning"


def test_second_request_is_a_hit_with_zero_queries_and_the_same_bytes(dashboard, django_assert_num_queries):
    first = dashboard.client.get(stats_url(dashboard.org_a))
    hits = metric("dashboard_cache_hit_total", query_type="stats")

    with django_assert_num_queries(0):
        second = dashboard.client.get(stats_url(dashboard.org_a))

    assert second.status_code == 200
    assert second.content == first.content
    assert second["Content-Type"] == "application/json"
    assert metric("dashboard_cache_hit_total", query_type="stats") == hits + 1


@pytest.mark.parametrize(
    "path",
    ["/stats", "/units/status", "/alerts/count", "/devices/online"],
)
def test_every_aggregation_is_served_from_cache_on_the_second_request(dashboard, path, django_assert_num_queries):
    url = f"/api/orgs/{dashboard.org_a.id}{path}"
    first = dashboard.client.get(url)
    with django_assert_num_queries(0):
        second = dashboard.client.get(url)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content


def test_trends_and_unit_alert_counts_are_cached_per_unit(dashboard, redis_client, django_assert_num_queries):
    hot, ok, _ = dashboard.units_a
    org = dashboard.org_a
    trends = dashboard.client.get(f"/api/orgs/{org.id}/units/{ok.id}/trends")
    unit_alerts = dashboard.client.get(f"/api/orgs/{org.id}/alerts/count?unit={hot.id}")
    assert trends.status_code == unit_alerts.status_code == 200
    assert redis_client.exists(f"dashboard:temperature:trends:org:{org.id}:unit:{ok.id}")
    assert redis_client.exists(f"dashboard:alerts:count:org:{org.id}:unit:{hot.id}")
    points = trends.json()["points"]
    assert sum(1 for p in points) >= 1
    assert max(p["max"] for p in points) == 11.0
    assert {p["alarmState"] for p in points} <= {"normal", "too_hot", "too_cold"}
    assert unit_alerts.json()["unresolved"] == 1
    with django_assert_num_queries(0):
        assert dashboard.client.get(f"/api/orgs/{org.id}/units/{ok.id}/trends").content == trends.content


def test_refresh_bypasses_the_cache_and_stores_the_fresh_value(dashboard, redis_client):
    key = f"dashboard:stats:org:{dashboard.org_a.id}"
    dashboard.client.get(stats_url(dashboard.org_a))
    redis_client.set(key, b'{"planted":true}', ex=60)
    assert dashboard.client.get(stats_url(dashboard.org_a)).json() == {"planted": True}

    refreshed = dashboard.client.get(stats_url(dashboard.org_a) + "?refresh=1")

    assert refreshed.json()["unitCounts"]["total"] == 3
    assert redis_client.get(key) == refreshed.content


def test_the_entry_expires_after_the_configured_ttl_and_the_next_request_misses(dashboard, redis_client):
    key = f"dashboard:stats:org:{dashboard.org_a.id}"
    with override_settings(CACHE_TTL_SECONDS=1):
        dashboard.client.get(stats_url(dashboard.org_a))
        assert redis_client.ttl(key) == 1
        deadline = time.monotonic() + 5
        while redis_client.exists(key) and time.monotonic() < deadline:
            time.sleep(0.05)  # waiting on Redis's own expiry, polled, bounded
        assert not redis_client.exists(key)
        misses = metric("dashboard_cache_miss_total", query_type="stats")
        response = dashboard.client.get(stats_url(dashboard.org_a))
    assert response.status_code == 200
    assert metric("dashboard_cache_miss_total", query_type="stats") == misses + 1


def test_an_error_is_never_cached(dashboard, redis_client):
    missing_unit = "00000000-0000-4000-8000-000000000000"
    response = dashboard.client.get(f"/api/orgs/{dashboard.org_a.id}/units/{missing_unit}/trends")
    assert response.status_code == 404
    assert response.json() == {"error": "unit not found"}
    assert redis_client.keys("dashboard:*") == []


def test_cached_values_are_plain_json_aggregates(dashboard, redis_client):
    dashboard.client.get(stats_url(dashboard.org_a))
    value = json.loads(redis_client.get(f"dashboard:stats:org:{dashboard.org_a.id}"))
    assert set(value) == {
        "organizationId",
        "unitCounts",
        "alertCounts",
        "deviceCounts",
        "compliancePercentage",
        "memberCount",
        "siteCount",
        "worstState",
        "lastUpdated",
    }
    assert value["lastUpdated"].endswith("Z")


def _command_calls(redis_client) -> dict[str, int]:
    stats = redis_client.info("commandstats")
    return {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("get", "mget", "evalsha", "eval")}


def _calls_for_one_cached_read(client, redis_client, url: str) -> dict[str, int]:
    assert client.get(url).status_code == 200  # fills the cache
    before = _command_calls(redis_client)
    assert client.get(url).status_code == 200
    after = _command_calls(redis_client)
    return {name: after[name] - before[name] for name in before}


def test_without_tracked_copies_a_cached_read_is_one_redis_round_trip_on_the_fast_path(
    dashboard, redis_client, settings
):
    settings.CACHE_NEAR_MAX_MB = 0
    # One EVALSHA; inside it, three GETs: session, the principal it names, the value.
    calls = _calls_for_one_cached_read(dashboard.client, redis_client, f"/api/orgs/{dashboard.org_a.id}/stats")
    assert calls == {"get": 3, "mget": 0, "evalsha": 1, "eval": 0}


def test_without_the_fast_path_a_cached_read_is_two_round_trips_session_then_principal_with_value(
    dashboard, redis_client, settings
):
    settings.CACHE_FAST_PATH = False
    calls = _calls_for_one_cached_read(dashboard.client, redis_client, f"/api/orgs/{dashboard.org_a.id}/stats")
    assert calls == {"get": 1, "mget": 1, "evalsha": 0, "eval": 0}


def test_a_stats_recompute_is_two_queries_that_agree_with_each_endpoints_own_counts(
    dashboard, django_assert_num_queries
):
    """The counts in one query; the 24 h compliance and the state a reading updates it from in a
    second (one statement, so the two groupings it reads agree)."""
    org = dashboard.org_a

    with django_assert_num_queries(2):
        stats = selectors.organization_stats(org_id=org.id)

    assert stats["unitCounts"] == selectors.unit_status_counts(org_id=org.id)
    assert stats["alertCounts"] == selectors.alert_counts(org_id=org.id)
    assert stats["deviceCounts"] == selectors.device_online_counts(org_id=org.id)
    assert (stats["compliancePercentage"], stats["memberCount"], stats["siteCount"]) == (60.0, 1, 1)


def test_an_organization_with_nothing_in_it_has_zero_counts_and_no_compliance():
    empty = factories.organization()

    stats = selectors.organization_stats(org_id=empty.id)

    assert stats["unitCounts"] == dict.fromkeys(
        ("normal", "warning", "critical", "offline", "too_hot", "too_cold", "total"), 0
    )
    assert set(stats["alertCounts"].values()) == set(stats["deviceCounts"].values()) == {0}
    assert (stats["compliancePercentage"], stats["memberCount"], stats["siteCount"]) == (None, 0, 0)
    assert stats["worstState"] == "normal"
