"""Acceptance 6: with Redis unreachable everything still answers from the database."""

from __future__ import annotations

import time

import pytest

from tests.conftest import metric

pytestmark = pytest.mark.django_db


def _paths(d) -> list[str]:
    org, unit = d.org_a.id, d.units_a[1].id
    return [
        "/api/orgs/",
        f"/api/orgs/{org}/units",
        f"/api/orgs/{org}/stats",
        f"/api/orgs/{org}/stats?refresh=1",
        f"/api/orgs/{org}/units/status",
        f"/api/orgs/{org}/alerts",
        f"/api/orgs/{org}/alerts/count",
        f"/api/orgs/{org}/alerts/count?unit={unit}",
        f"/api/orgs/{org}/units/{unit}/trends",
        f"/api/orgs/{org}/devices/online",
    ]


def test_every_endpoint_answers_200_with_database_data_when_redis_is_unreachable(dashboard, redis_down):
    errors = metric("dashboard_cache_error_total", operation="get")
    for path in _paths(dashboard):
        response = dashboard.client.get(path)
        assert response.status_code == 200, path
    stats = dashboard.client.get(f"/api/orgs/{dashboard.org_a.id}/stats").json()
    assert stats["unitCounts"]["total"] == 3 and stats["alertCounts"]["unresolved"] == 1
    assert metric("dashboard_cache_error_total", operation="get") > errors


def test_a_degraded_body_is_byte_identical_to_a_cached_one(dashboard, closed_port):
    from django.test import override_settings

    from stats import cache
    from tests.conftest import _caches_at

    url = f"/api/orgs/{dashboard.org_a.id}/units/status"
    with override_settings(CACHES=_caches_at(f"redis://127.0.0.1:{closed_port}/11")):
        degraded = dashboard.client.get(url).content
    cache.reset_breaker()
    miss, hit = dashboard.client.get(url).content, dashboard.client.get(url).content
    assert degraded == miss == hit
    assert degraded.startswith(b'{"normal":1,"warning":1,"critical":0,"offline":1')


def test_health_says_degraded_with_200_when_redis_is_down(db, redis_down):
    from django.test import Client

    response = Client().get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["services"]["database"]["ok"] is True
    assert body["services"]["cache"]["ok"] is False
    assert body["services"]["redis"]["ok"] is False


def test_health_is_healthy_when_everything_is_up(db):
    from django.test import Client

    body = Client().get("/health").json()
    assert body["status"] == "healthy"
    assert body["services"]["cache"]["ok"] is True
    assert isinstance(body["services"]["cache"]["latencyMs"], float)


def test_a_silent_redis_costs_a_request_about_the_socket_timeout_not_a_hang(dashboard, redis_silent, settings):
    # Not a performance assertion: without socket timeouts this request would never return.
    url = f"/api/orgs/{dashboard.org_a.id}/stats"
    started = time.monotonic()
    response = dashboard.client.get(url)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["unitCounts"]["total"] == 3
    # session read + principal read + stats read, each bounded by the socket timeout
    assert elapsed < 4 * settings.REDIS_SOCKET_TIMEOUT + 1.0


def test_the_breaker_stops_paying_for_redis_after_repeated_failures(dashboard, redis_silent):
    url = f"/api/orgs/{dashboard.org_a.id}/stats"
    skipped = metric("dashboard_cache_breaker_skipped_total", operation="get")
    for _ in range(6):
        assert dashboard.client.get(url).status_code == 200
    assert metric("dashboard_cache_breaker_open") == 1
    assert metric("dashboard_cache_breaker_skipped_total", operation="get") > skipped
