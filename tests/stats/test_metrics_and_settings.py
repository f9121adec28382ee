"""Acceptance 7 (metrics exposition) and start-up validation of the settings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.test import Client, override_settings

from tests.conftest import metric

pytestmark = pytest.mark.django_db


def test_hit_and_miss_counters_rise_by_exactly_one_per_request(dashboard):
    url = f"/api/orgs/{dashboard.org_a.id}/devices/online"
    before = (
        metric("dashboard_cache_hit_total", query_type="devices:online"),
        metric("dashboard_cache_miss_total", query_type="devices:online"),
    )
    dashboard.client.get(url)
    assert metric("dashboard_cache_miss_total", query_type="devices:online") == before[1] + 1
    assert metric("dashboard_cache_hit_total", query_type="devices:online") == before[0]
    dashboard.client.get(url)
    dashboard.client.get(url)
    assert metric("dashboard_cache_hit_total", query_type="devices:online") == before[0] + 2
    assert metric("dashboard_cache_miss_total", query_type="devices:online") == before[1] + 1


def test_metrics_exposes_the_cache_series_with_their_labels(dashboard, redis_down):
    dashboard.client.get(f"/api/orgs/{dashboard.org_a.id}/stats")
    text = Client().get("/metrics").content.decode()
    for line in [
        'dashboard_cache_miss_total{query_type="stats"}',
        'dashboard_cache_error_total{operation="get"}',
        'dashboard_cache_latency_seconds_bucket{le="0.001",operation="get"}',
        'dashboard_cache_latency_seconds_bucket{le="0.5",operation="get"}',
        "django_http_requests_total_by_method_total",
        "django_db_execute_total",
    ]:
        assert line in text, line


def test_metrics_exposes_hits_after_a_hit(dashboard):
    dashboard.client.get(f"/api/orgs/{dashboard.org_a.id}/stats")
    dashboard.client.get(f"/api/orgs/{dashboard.org_a.id}/stats")
    assert 'dashboard_cache_hit_total{query_type="stats"}' in Client().get("/metrics").content.decode()


def test_metrics_can_require_a_bearer_token(db):
    with override_settings(METRICS_TOKEN="s3cret"):
        assert Client().get("/metrics").status_code == 401
        assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def _settings_error(**env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "import dashboard_project.settings"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    return result.stderr


@pytest.mark.parametrize("value,message", [("abc", "must be an integer"), ("-5", "must be >= 1"), ("1.5", "integer")])
def test_a_bad_cache_ttl_stops_start_up_with_a_clear_error(value, message):
    error = _settings_error(CACHE_TTL_SECONDS=value)
    assert "ImproperlyConfigured" in error and "CACHE_TTL_SECONDS" in error and message in error


def test_redis_host_and_port_are_used_when_redis_url_is_absent():
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    code = "from dashboard_project import settings as s; print(s.CACHES['default']['LOCATION'])"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "REDIS_HOST": "cache.internal", "REDIS_PORT": "6390", "REDIS_CACHE_DB": "4"},
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == "redis://cache.internal:6390/4"
