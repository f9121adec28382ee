"""A value read near the end of its TTL is recomputed in the background before it expires
(XFetch), so that the reads after it stay hits; never when another process is computing it."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from stats import cache
from stats.cache import QueryType, ahead, cache_key
from stats.models import Role
from tests import factories
from tests.conftest import metric

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_draw_refreshes_more_often_the_closer_the_expiry(monkeypatch):
    monkeypatch.setattr(ahead, "_draw", lambda: 0.5)  # -ln(0.5) = 0.69: a gap of 0.69 leads
    assert ahead.due("stats", 5.0, 1.0) and ahead.due("stats", 5.0, 3.4)
    assert not ahead.due("stats", 5.0, 3.5) and not ahead.due("stats", 5.0, 50.0)
    assert not ahead.due("stats", 5.0, None) and not ahead.due("stats", 0.0, 1.0)


@pytest.fixture
def member_client():
    org = factories.organization("Ahead")
    factories.unit(org)
    client = Client()
    client.force_login(factories.member(org, role=Role.VIEWER))
    return org, client


def _wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_a_hit_near_expiry_is_served_and_the_value_recomputed_in_the_background(
    member_client, redis_client, monkeypatch
):
    org, client = member_client
    monkeypatch.setattr(ahead, "_draw", lambda: 0.5)
    url, key = f"/api/orgs/{org.id}/stats", cache_key(QueryType.STATS, org.id)
    assert client.get(url).status_code == 200  # cached
    redis_client.expire(key, 2)  # as if it were 58 s old

    def computed() -> float:  # from the database, or rebuilt from the compliance state and the counts
        return sum(metric(f"dashboard_cache_{how}_total", query_type="stats") for how in ("recompute", "rebuilt"))

    recomputes = computed()
    misses = metric("dashboard_cache_miss_total", query_type="stats")

    response = client.get(url)

    assert response.status_code == 200
    assert metric("dashboard_cache_miss_total", query_type="stats") == misses  # served from the cache
    assert _wait_for(lambda: redis_client.ttl(key) > 50)  # recomputed and stored again, before expiry
    assert _wait_for(lambda: not ahead.refresher._pending)
    assert computed() == recomputes + 1
    assert metric("dashboard_cache_refresh_ahead_total", query_type="stats", outcome="refreshed") >= 1


def test_a_trend_near_expiry_is_not_refreshed_ahead(member_client, redis_client, monkeypatch):
    """A trend's refresh lead is 0 (the catalogue's): its unit's readings update it in place,
    restarting its TTL, and once expired it is rebuilt from its state with one query."""
    org, client = member_client
    monkeypatch.setattr(ahead, "_draw", lambda: 0.5)  # as in the stats' test above: due at 2 s left
    unit = org.units.get()
    url, key = f"/api/orgs/{org.id}/units/{unit.id}/trends", cache_key(QueryType.TEMPERATURE_TRENDS, org.id, unit.id)
    assert client.get(url).status_code == 200  # cached
    redis_client.expire(key, 2)
    labels = {"query_type": "temperature:trends", "outcome": "scheduled"}
    scheduled = metric("dashboard_cache_refresh_ahead_total", **labels)

    assert client.get(url).status_code == 200

    assert metric("dashboard_cache_refresh_ahead_total", **labels) == scheduled
    assert 0 < redis_client.ttl(key) <= 2


def test_no_refresh_ahead_while_another_process_computes_the_value(member_client, redis_client, monkeypatch):
    org, client = member_client
    monkeypatch.setattr(ahead, "_draw", lambda: 0.5)
    url, key = f"/api/orgs/{org.id}/stats", cache_key(QueryType.STATS, org.id)
    client.get(url)
    redis_client.expire(key, 2)
    redis_client.set(cache.lock_key(key), "another-process", px=10_000)
    recomputes = metric("dashboard_cache_recompute_total", query_type="stats")
    client.get(url)
    assert _wait_for(lambda: ahead.refresher._pending == set())
    assert metric("dashboard_cache_recompute_total", query_type="stats") == recomputes
    assert redis_client.ttl(key) <= 2


def test_a_windowed_value_ending_at_the_window_boundary_is_not_refreshed_ahead(member_client, monkeypatch):
    """A trend or the stats expire when the window moves on; computed just before, the new value
    would expire at the same instant."""
    from stats import services

    org, _ = member_client
    monkeypatch.setattr(ahead, "_draw", lambda: 1e-9)  # -ln: huge, so every read near enough is due
    monkeypatch.setattr(services, "ms_to_next_bucket", lambda now: 10_000)
    key = cache_key(QueryType.STATS, org.id)
    scheduled = metric("dashboard_cache_refresh_ahead_total", query_type="stats", outcome="scheduled")
    assert not services.query_refresh_ahead(key, 10.0)  # its expiry is the boundary
    assert not services.query_refresh_ahead(key, 9.5)
    assert metric("dashboard_cache_refresh_ahead_total", query_type="stats", outcome="scheduled") == scheduled
    assert services.query_refresh_ahead(key, 2.0)  # expiring before it: its TTL, refreshed ahead as usual
    assert metric("dashboard_cache_refresh_ahead_total", query_type="stats", outcome="scheduled") == scheduled + 1
    assert _wait_for(lambda: ahead.refresher._pending == set())  # the refresh ran before the test ends
