"""Sessions come from Redis on the hot path, and from the database while the breaker is open."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stats import cache

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
        cache._breaker.failure()  # what five failed Redis calls do
    assert not cache.redis_usable()
    assert _session_queries(dashboard.client, url) == 1
