"""The fast path (stats/fast_path.py): a cached hit answered before the middleware stack, from
this process's tracked copies or in one Redis round trip, exactly as the stack would answer it;
everything else left to the stack."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from stats.models import Role
from tests import factories
from tests.conftest import metric

pytestmark = pytest.mark.django_db


def _calls(redis_client) -> dict[str, int]:
    stats = redis_client.info("commandstats")
    return {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "mget")}


def _get(client: Client, redis_client, url: str, **extra):
    """(response, served by the fast path), from the lane's own counter."""
    served = metric("dashboard_fast_path_requests_total", outcome="served")
    response = client.get(url, **extra)
    return response, metric("dashboard_fast_path_requests_total", outcome="served") == served + 1


def _urls(dashboard) -> list[str]:
    org, unit = dashboard.org_a.id, dashboard.units_a[1].id
    return [
        f"/api/orgs/{org}/stats",
        f"/api/orgs/{org}/units/status",
        f"/api/orgs/{org}/alerts/count",
        f"/api/orgs/{org}/devices/online",
        f"/api/orgs/{org}/units/{unit}/trends",
    ]


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_every_cached_dashboard_endpoint_is_served_by_the_lane_with_the_stacks_exact_response(
    dashboard, redis_client, settings
):
    lane_client = dashboard.client
    for url in _urls(dashboard):
        first, lane = _get(lane_client, redis_client, url)
        assert (first.status_code, lane) == (200, False), url  # the miss goes down the stack
        hit, lane = _get(lane_client, redis_client, url)
        assert (hit.status_code, lane) == (200, True), url
        assert hit.content == first.content

    settings.CACHE_FAST_PATH = False
    stack_client = _logged_in(dashboard.member)  # middleware is built per client handler
    for url in _urls(dashboard):
        lane_hit, _ = _get(lane_client, redis_client, url)
        stack_hit, lane = _get(stack_client, redis_client, url)
        assert lane is False
        assert stack_hit.status_code == 200
        assert stack_hit.content == lane_hit.content
        assert dict(stack_hit.headers) == dict(lane_hit.headers), url


def _total_commands(redis_client) -> int:
    return int(redis_client.info("stats")["total_commands_processed"])


def test_a_lane_hit_reads_redis_once_then_not_at_all_costs_no_query_and_counts_one_hit_per_cached_value(
    dashboard, redis_client, django_assert_num_queries, monkeypatch
):
    from stats import near

    monkeypatch.setattr(near, "CONFIRM_SECONDS", 3600.0)  # no liveness HELLO between the requests
    url = _urls(dashboard)[0]
    dashboard.client.get(url)  # the miss: the stack computes and stores
    hits = metric("dashboard_cache_hit_total", query_type="stats")
    authz_hits = metric("dashboard_cache_hit_total", query_type="authz")
    before = _calls(redis_client)
    with django_assert_num_queries(0):
        response, lane = _get(dashboard.client, redis_client, url)
    assert (response.status_code, lane) == (200, True)
    # New to this process's tracked copies: one script call reads the session and the value,
    # a second the principal the session names.
    assert _calls(redis_client) == {"evalsha": before["evalsha"] + 2, "mget": before["mget"]}
    assert metric("dashboard_cache_hit_total", query_type="stats") == hits + 1
    assert metric("dashboard_cache_hit_total", query_type="authz") == authz_hits + 1

    commands = _total_commands(redis_client)
    with django_assert_num_queries(0):
        again, lane = _get(dashboard.client, redis_client, url)
    assert (again.status_code, lane) == (200, True)
    assert again.content == response.content
    # Session, principal and value all come from the copies: Redis sees only our INFO call.
    assert _total_commands(redis_client) == commands + 1
    assert metric("dashboard_cache_hit_total", query_type="stats") == hits + 2


def test_with_the_near_cache_off_every_lane_hit_is_one_round_trip(dashboard, redis_client, settings):
    settings.CACHE_NEAR_MAX_MB = 0
    url = _urls(dashboard)[0]
    dashboard.client.get(url)
    for _ in range(2):
        before = _calls(redis_client)
        response, lane = _get(dashboard.client, redis_client, url)
        assert (response.status_code, lane) == (200, True)
        assert _calls(redis_client) == {"evalsha": before["evalsha"] + 1, "mget": before["mget"]}


def _http_samples() -> dict[tuple, float]:
    """django-prometheus's request series, latency sums left out (they are timings)."""
    samples = {}
    for family in REGISTRY.collect():
        if family.name.startswith("django_http"):
            for s in family.samples:
                if "latency" in s.name and not s.name.endswith("_count"):
                    continue
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _delta(before: dict, after: dict) -> dict:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def test_a_lane_hit_moves_django_prometheus_request_metrics_exactly_like_a_stack_hit(dashboard, redis_client, settings):
    url = _urls(dashboard)[0]
    dashboard.client.get(url)
    before = _http_samples()
    _, lane = _get(dashboard.client, redis_client, url)
    lane_delta = _delta(before, _http_samples())
    assert lane is True

    settings.CACHE_FAST_PATH = False
    stack_client = _logged_in(dashboard.member)
    before = _http_samples()
    _, lane = _get(stack_client, redis_client, url)
    stack_delta = _delta(before, _http_samples())
    assert lane is False
    assert lane_delta == stack_delta
    assert lane_delta[("django_http_responses_total_by_status_total", (("status", "200"),))] == 1


def test_the_lane_leaves_non_members_anonymous_and_bad_cookies_to_the_stack(dashboard, redis_client):
    url = _urls(dashboard)[0]
    assert dashboard.client.get(url).status_code == 200  # org A's stats now cached

    # The outsider's own organization first, so its principal is cached: the lane then holds
    # a valid session, a principal and org A's value, and only membership says no.
    assert dashboard.outsider_client.get(f"/api/orgs/{dashboard.org_b.id}/stats").status_code == 200
    for _ in range(2):
        passed = metric("dashboard_fast_path_requests_total", outcome="passed")
        response, lane = _get(dashboard.outsider_client, redis_client, url)
        assert (response.status_code, response.json(), lane) == (404, {"error": "organization not found"}, False)
        assert metric("dashboard_fast_path_requests_total", outcome="passed") == passed + 1

    response, lane = _get(Client(), redis_client, url)
    assert (response.status_code, lane) == (401, False)

    forged = Client()
    forged.cookies["sessionid"] = "a" * 32
    response, lane = _get(forged, redis_client, url)
    assert (response.status_code, lane) == (401, False)

    viewer_elsewhere = _logged_in(factories.member(dashboard.org_b, role=Role.VIEWER))
    for _ in range(2):  # the first request caches the principal, the second meets it in the lane
        response, lane = _get(viewer_elsewhere, redis_client, url)
        assert (response.status_code, lane) == (404, False)


def test_a_session_signed_out_by_a_password_change_is_refused_after_its_hits(
    dashboard, redis_client, django_capture_on_commit_callbacks
):
    url = _urls(dashboard)[0]
    dashboard.client.get(url)
    _, lane = _get(dashboard.client, redis_client, url)
    assert lane is True

    with django_capture_on_commit_callbacks(execute=True):
        dashboard.member.set_password("a-new-password-1234")
        dashboard.member.save()  # invalidates the cached principal on commit (stats/signals.py)

    response, lane = _get(dashboard.client, redis_client, url)
    assert (response.status_code, lane) == (401, False)
    response, lane = _get(dashboard.client, redis_client, url)  # principal cached again, new hash
    assert (response.status_code, lane) == (401, False)


def test_a_deactivated_user_is_refused_at_once(dashboard, redis_client, django_capture_on_commit_callbacks):
    url = _urls(dashboard)[0]
    dashboard.client.get(url)
    with django_capture_on_commit_callbacks(execute=True):
        dashboard.member.is_active = False
        dashboard.member.save()
    for _ in range(2):  # principal recomputed by the stack, then met by the lane
        response, lane = _get(dashboard.client, redis_client, url)
        assert (response.status_code, lane) == (401, False)


def test_a_membership_removed_is_refused_at_once(dashboard, redis_client, django_capture_on_commit_callbacks):
    url = _urls(dashboard)[0]
    dashboard.client.get(url)
    with django_capture_on_commit_callbacks(execute=True):
        for membership in dashboard.member.memberships.all():
            membership.delete()  # also invalidates org A's stats: another member caches them again
    assert _logged_in(factories.member(dashboard.org_a)).get(url).status_code == 200
    for _ in range(2):  # principal recomputed by the stack, then met by the lane
        response, lane = _get(dashboard.client, redis_client, url)
        assert (response.status_code, lane) == (404, False)


def test_requests_with_a_query_string_go_down_the_stack(dashboard, redis_client):
    url = _urls(dashboard)[0]
    dashboard.client.get(url)
    response, lane = _get(dashboard.client, redis_client, url + "?refresh=1")
    assert (response.status_code, lane) == (200, False)
    unit = dashboard.units_a[0].id
    count_url = _urls(dashboard)[2]
    dashboard.client.get(count_url)
    response, lane = _get(dashboard.client, redis_client, f"{count_url}?unit={unit}")
    assert (response.status_code, lane) == (200, False)
    assert response.json() != {}


def test_a_host_not_in_allowed_hosts_gets_the_stacks_400(dashboard, redis_client, settings):
    url = _urls(dashboard)[0]
    dashboard.client.get(url)
    settings.ALLOWED_HOSTS = ["dashboard.example"]
    response, lane = _get(dashboard.client, redis_client, url, headers={"host": "evil.example"})
    assert response.status_code == 400
    assert lane is False


def test_an_https_redirect_is_left_to_the_stack(dashboard, redis_client, settings):
    url = _urls(dashboard)[0]
    dashboard.client.get(url)
    settings.SECURE_SSL_REDIRECT = True
    client = _logged_in(dashboard.member)  # SecurityMiddleware reads its settings when built
    response, lane = _get(client, redis_client, url)
    assert response.status_code == 301
    assert response["Location"].startswith("https://")
    assert lane is False


def test_the_lane_switched_off_serves_the_same_hits_through_the_stack(dashboard, redis_client, settings):
    settings.CACHE_FAST_PATH = False
    client = _logged_in(dashboard.member)
    url = _urls(dashboard)[0]
    client.get(url)
    before = _calls(redis_client)
    served = metric("dashboard_fast_path_requests_total", outcome="served")
    response = client.get(url)
    assert response.status_code == 200
    assert _calls(redis_client)["evalsha"] == before["evalsha"]
    assert metric("dashboard_fast_path_requests_total", outcome="served") == served


def test_redis_down_the_lane_steps_aside_and_the_database_answers(dashboard, redis_down):
    errors = metric("dashboard_cache_error_total", operation="get")
    response = dashboard.client.get(_urls(dashboard)[0])
    assert response.status_code == 200
    assert response.json()["organizationId"] == str(dashboard.org_a.id)
    assert metric("dashboard_cache_error_total", operation="get") > errors


def test_a_principal_replaced_in_redis_is_decoded_again_not_served_from_the_last_decoding(dashboard, redis_client):
    url = _urls(dashboard)[0]
    dashboard.client.get(url)
    _, lane = _get(dashboard.client, redis_client, url)
    assert lane is True  # the lane has decoded this user's principal once

    key = f"authz:user:{dashboard.member.pk}"
    principal = json.loads(redis_client.get(key))
    principal["roles"] = {}  # what a recompute stores once the membership is gone
    redis_client.set(key, json.dumps(principal), keepttl=True)

    response, lane = _get(dashboard.client, redis_client, url)
    assert lane is False
    assert response.status_code == 404


def _lane_connections(redis_client) -> list[int]:
    db = redis_client.connection_pool.connection_kwargs["db"]
    own = redis_client.client_id()
    return [int(c["id"]) for c in redis_client.client_list() if int(c["db"]) == db and int(c["id"]) != own]


@pytest.mark.parametrize("near_mb", [32, 0], ids=["tracked-copies", "round-trip"])
def test_a_connection_killed_by_the_server_is_reconnected_without_an_error(dashboard, redis_client, settings, near_mb):
    settings.CACHE_NEAR_MAX_MB = near_mb
    url = _urls(dashboard)[0]
    dashboard.client.get(url)
    _, lane = _get(dashboard.client, redis_client, url)
    assert lane is True
    killed = _lane_connections(redis_client)
    assert killed  # the lane's connection, among others
    for client_id in killed:
        redis_client.client_kill_filter(_id=client_id)
    errors = metric("dashboard_cache_error_total", operation="get")
    before = _calls(redis_client)["evalsha"]

    response, lane = _get(dashboard.client, redis_client, url)

    assert (response.status_code, lane) == (200, True)
    assert metric("dashboard_cache_error_total", operation="get") == errors
    # Nothing read on the dead connection is trusted: the new one reads again (with copies:
    # session and value, then the principal).
    assert _calls(redis_client)["evalsha"] == before + (2 if near_mb else 1)


def test_the_lane_loads_its_script_again_after_redis_forgot_it(dashboard, redis_client, settings):
    settings.CACHE_NEAR_MAX_MB = 0
    url = _urls(dashboard)[0]
    first = dashboard.client.get(url)
    redis_client.script_flush()

    response, lane = _get(dashboard.client, redis_client, url)

    assert (response.status_code, lane) == (200, True)
    assert response.content == first.content
    before = _calls(redis_client)["evalsha"]
    _, lane = _get(dashboard.client, redis_client, url)
    assert lane is True
    assert _calls(redis_client)["evalsha"] == before + 1  # EVAL cached it: back to EVALSHA


def test_the_tracked_copies_load_their_script_again_after_redis_forgot_it(dashboard, redis_client):
    url = _urls(dashboard)[0]
    first = dashboard.client.get(url)
    _get(dashboard.client, redis_client, url)  # copies taken
    redis_client.script_flush()
    key = f"dashboard:stats:org:{dashboard.org_a.id}"
    redis_client.set(key, redis_client.get(key), keepttl=True)  # same bytes, but a change: a push
    errors = metric("dashboard_cache_error_total", operation="get")
    before = _calls(redis_client)["evalsha"]

    response, lane = _get(dashboard.client, redis_client, url)

    assert (response.status_code, lane) == (200, True)
    assert response.content == first.content
    assert metric("dashboard_cache_error_total", operation="get") == errors
    assert _calls(redis_client)["evalsha"] == before + 2  # NOSCRIPT, then the loaded script
