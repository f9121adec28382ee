"""Sessions come from Redis on the hot path, and from the database while the breaker is open."""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from stats import cache
from tests.conftest import metric

pytestmark = pytest.mark.django_db


def _session_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return sum("django_session" in q["sql"] for q in queries.captured_queries)


def test_a_signed_in_request_reads_its_session_from_redis(dashboard):
    url = f"/api/orgs/{dashboard.org_a.id}/stats"
    dashboard.client.get(url)
    assert _session_queries(dashboard.client, url) == 0


def test_while_the_breaker_is_open_sessions_skip_redis_and_read_the_database(dashboard):
    url = f"/api/orgs/{dashboard.org_a.id}/stats"
    dashboard.client.get(url)
    for _ in range(cache.BREAKER_FAILURE_THRESHOLD):
        cache.boundary.breaker.failure()  # what five failed Redis calls do
    assert not cache.boundary.breaker.allow()
    assert _session_queries(dashboard.client, url) == 1


def test_a_failing_sessions_redis_is_counted_per_request_and_logged_once(dashboard, redis_down, caplog):
    errors = metric("dashboard_cache_error_total", operation="session")
    with override_settings(CACHE_BREAKER_OPEN_SECONDS=0):  # every request tries Redis again
        for _ in range(3):
            assert dashboard.client.get("/api/orgs/").status_code == 200  # the session from the database
    assert metric("dashboard_cache_error_total", operation="session") >= errors + 3
    troubles = [(r.name, r.getMessage()[:60]) for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(troubles) == 1 and troubles[0][0] == "stats.cache", troubles
