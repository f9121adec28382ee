"""Tracked copies of the fast path's keys (stats/near.py): served without a round trip, never older
than Redis. Every change here is made by a plain client on another connection, as another
process would make it: only Redis's invalidation pushes can tell the copies about it."""

from __future__ import annotations

import json

import pytest

from stats import cache, near, services
from stats.models import Role
from tests.conftest import metric
from tests.stats.test_fast_path import _calls, _get, _total_commands

pytestmark = pytest.mark.django_db


def _stats_url(dashboard) -> str:
    return f"/api/orgs/{dashboard.org_a.id}/stats"


def _stats_key(dashboard) -> str:
    return cache.cache_key(cache.QueryType.STATS, dashboard.org_a.id)


def _session_key(dashboard) -> str:
    from django.core.cache import caches

    session_key = dashboard.client.cookies["sessionid"].value
    return caches["sessions"].make_key("django.contrib.sessions.cached_db" + session_key)


@pytest.fixture
def warm(dashboard, redis_client, monkeypatch):
    """Org A's stats cached in Redis and copied into this process (session, principal, value).
    The liveness HELLO is pushed out of the way of exact command counts (a slow machine could
    take a second between two requests); the HELLO's own test moves the clock instead."""
    monkeypatch.setattr(near, "CONFIRM_SECONDS", 3600.0)
    url = _stats_url(dashboard)
    first = dashboard.client.get(url)
    _, lane = _get(dashboard.client, redis_client, url)
    assert lane is True
    commands = _total_commands(redis_client)
    _, lane = _get(dashboard.client, redis_client, url)
    assert lane is True and _total_commands(redis_client) == commands + 1  # only our INFO: copies
    return first


def test_a_value_changed_by_another_client_is_served_new_on_the_next_request(dashboard, redis_client, warm):
    key = _stats_key(dashboard)
    changed = json.dumps({**json.loads(warm.content), "memberCount": 99}).encode()
    redis_client.set(key, changed, keepttl=True)
    invalidated = metric("dashboard_cache_near_total", outcome="invalidated")

    response, lane = _get(dashboard.client, redis_client, _stats_url(dashboard))

    assert (response.status_code, lane) == (200, True)
    assert response.content == changed
    assert metric("dashboard_cache_near_total", outcome="invalidated") == invalidated + 1


def test_a_value_deleted_by_another_client_is_not_served_from_the_copy(dashboard, redis_client, warm):
    redis_client.delete(_stats_key(dashboard))

    response, lane = _get(dashboard.client, redis_client, _stats_url(dashboard))

    assert (response.status_code, lane) == (200, False)  # the miss goes down the stack
    recomputed, before = json.loads(response.content), json.loads(warm.content)
    assert recomputed["lastUpdated"] > before["lastUpdated"]  # computed anew, from the same rows
    assert {**recomputed, "lastUpdated": None} == {**before, "lastUpdated": None}


def test_a_session_deleted_elsewhere_is_not_honoured_by_the_copy(dashboard, redis_client, warm):
    from django.contrib.sessions.models import Session

    Session.objects.all().delete()
    redis_client.delete(_session_key(dashboard))  # signed out by another process

    response, lane = _get(dashboard.client, redis_client, _stats_url(dashboard))

    assert lane is False
    assert response.status_code == 401


def test_a_membership_removed_elsewhere_is_not_honoured_by_the_copy(dashboard, redis_client, warm):
    principal_key = cache.principal_key(dashboard.member.id)
    principal = json.loads(redis_client.get(principal_key))
    redis_client.set(principal_key, json.dumps({**principal, "roles": {}}), keepttl=True)

    response, lane = _get(dashboard.client, redis_client, _stats_url(dashboard))

    assert lane is False
    assert response.status_code == 404  # the stack reads the same principal: not a member


def test_a_flush_drops_every_copy(dashboard, redis_client, warm):
    flushes = metric("dashboard_cache_near_flushes_total", reason="flushed")
    redis_client.flushdb()

    response, lane = _get(dashboard.client, redis_client, _stats_url(dashboard))

    assert lane is False  # nothing in Redis, nothing served from memory
    assert response.status_code == 200
    assert metric("dashboard_cache_near_flushes_total", reason="flushed") == flushes + 1


def test_a_copy_expires_with_its_key_by_the_local_clock(dashboard, redis_client, warm, monkeypatch):
    ttl_ms = redis_client.pttl(_stats_key(dashboard))
    assert ttl_ms > 0
    started = near.time.monotonic()
    monkeypatch.setattr(near.time, "monotonic", lambda: started + ttl_ms / 1000 + 0.001)
    before = _calls(redis_client)["evalsha"]

    response, lane = _get(dashboard.client, redis_client, _stats_url(dashboard))

    # The key is still in Redis (its real TTL has not passed), but the copy's has: read again,
    # with the principal, whose TTL is the same (the session's is two weeks).
    assert (response.status_code, lane) == (200, True)
    assert _calls(redis_client)["evalsha"] == before + 2


def test_a_connection_not_confirmed_for_a_second_is_asked_its_role_before_a_copy_is_served(
    dashboard, redis_client, warm, monkeypatch
):
    monkeypatch.setattr(near, "CONFIRM_SECONDS", 1.0)
    started = near.time.monotonic()
    monkeypatch.setattr(near.time, "monotonic", lambda: started + 1.5)
    stats = redis_client.info("commandstats")
    hellos, evalsha = stats["cmdstat_hello"]["calls"], stats["cmdstat_evalsha"]["calls"]

    response, lane = _get(dashboard.client, redis_client, _stats_url(dashboard))

    assert (response.status_code, lane) == (200, True)
    stats = redis_client.info("commandstats")
    assert stats["cmdstat_hello"]["calls"] == hellos + 1
    assert stats["cmdstat_evalsha"]["calls"] == evalsha  # still served from the copies
    _, lane = _get(dashboard.client, redis_client, _stats_url(dashboard))
    assert redis_client.info("commandstats")["cmdstat_hello"]["calls"] == hellos + 1  # confirmed: no second


def test_this_processs_own_invalidation_drops_the_copy_without_waiting_for_the_push(dashboard, redis_client, warm):
    forgotten = metric("dashboard_cache_near_total", outcome="forgotten")

    services.org_invalidate(org_id=dashboard.org_a.id)

    assert metric("dashboard_cache_near_total", outcome="forgotten") == forgotten + 1
    response, lane = _get(dashboard.client, redis_client, _stats_url(dashboard))
    assert (response.status_code, lane) == (200, False)


def test_a_membership_granted_in_this_process_lets_the_member_in_at_once(
    dashboard, redis_client, django_capture_on_commit_callbacks
):
    from stats.models import Membership

    outsider_url = f"/api/orgs/{dashboard.org_b.id}/stats"
    dashboard.outsider_client.get(outsider_url)
    _, lane = _get(dashboard.outsider_client, redis_client, outsider_url)
    assert lane is True  # the outsider's principal is copied: org B only
    outsider = Membership.objects.get(organization=dashboard.org_b).user
    assert dashboard.outsider_client.get(_stats_url(dashboard)).status_code == 404

    with django_capture_on_commit_callbacks(execute=True):
        Membership.objects.create(user=outsider, organization=dashboard.org_a, role=Role.VIEWER)

    response = dashboard.outsider_client.get(_stats_url(dashboard))
    assert response.status_code == 200


def test_a_forked_process_does_not_use_its_parents_copies(dashboard, redis_client, warm, monkeypatch):
    parent = near.os.getpid()
    monkeypatch.setattr(near.os, "getpid", lambda: parent + 1)
    before = _calls(redis_client)["evalsha"]

    response, lane = _get(dashboard.client, redis_client, _stats_url(dashboard))

    assert (response.status_code, lane) == (200, True)
    assert _calls(redis_client)["evalsha"] == before + 2  # a new connection reads everything again


def test_the_copies_stay_within_their_size_bound(redis_client, settings):
    connection_kwargs = {**redis_client.connection_pool.connection_kwargs, "protocol": 3}
    from redis.connection import Connection

    copies = near.NearCache(lambda: Connection(**connection_kwargs), max_bytes=1000)
    redis_client.set("dashboard:bound:a", b"x" * 600)
    redis_client.set("dashboard:bound:b", b"y" * 600)
    full = metric("dashboard_cache_near_flushes_total", reason="full")

    assert copies.get_many(["dashboard:bound:a"]) == [b"x" * 600]
    assert len(copies) == 1
    assert copies.get_many(["dashboard:bound:b"]) == [b"y" * 600]

    assert len(copies) == 1  # a, then b: 1,200 bytes do not fit in 1,000
    assert metric("dashboard_cache_near_flushes_total", reason="full") == full + 1
    copies.clear()


def test_signing_out_in_this_process_drops_the_sessions_copy_at_once(dashboard, redis_client, warm):
    from django.test import Client

    cookie = dashboard.client.cookies["sessionid"].value
    forgotten = metric("dashboard_cache_near_total", outcome="forgotten")

    dashboard.client.logout()

    assert metric("dashboard_cache_near_total", outcome="forgotten") == forgotten + 1
    replay = Client()
    replay.cookies["sessionid"] = cookie
    response, lane = _get(replay, redis_client, _stats_url(dashboard))
    assert (response.status_code, lane) == (401, False)


def test_only_round_trips_are_timed_so_copy_hits_do_not_dilute_the_latency_alert(dashboard, redis_client, warm):
    timed = metric("dashboard_cache_latency_seconds_count", operation="get")

    _, lane = _get(dashboard.client, redis_client, _stats_url(dashboard))
    assert lane is True
    assert metric("dashboard_cache_latency_seconds_count", operation="get") == timed  # a copy: no timing

    redis_client.set(_stats_key(dashboard), warm.content, keepttl=True)  # a push: the next read fetches
    _, lane = _get(dashboard.client, redis_client, _stats_url(dashboard))
    assert lane is True
    assert metric("dashboard_cache_latency_seconds_count", operation="get") == timed + 1


def _tracking_connections(redis_client) -> int:
    db = redis_client.connection_pool.connection_kwargs["db"]
    return sum(1 for c in redis_client.client_list() if "t" in c["flags"] and int(c["db"]) == db)


def test_closing_drops_the_tracked_connection_and_every_copy(dashboard, redis_client, warm):
    tracking = _tracking_connections(redis_client)
    assert tracking >= 1

    cache.near_close()  # the process is stopping (dashboard_project.shutdown)

    assert _tracking_connections(redis_client) == tracking - 1
    hits = metric("dashboard_cache_near_total", outcome="hit")
    fetched = metric("dashboard_cache_near_total", outcome="fetched")
    response, lane = _get(dashboard.client, redis_client, _stats_url(dashboard))
    assert (response.status_code, lane) == (200, True)  # a later read reconnects: nothing breaks
    assert metric("dashboard_cache_near_total", outcome="hit") == hits  # no copy survived the close
    assert metric("dashboard_cache_near_total", outcome="fetched") > fetched
