"""The admin cache inspector: what staff see, and who may delete keys or invalidate an org."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from stats import cache
from stats.cache import QueryType, cache_key
from tests import factories
from tests.conftest import metric

pytestmark = pytest.mark.django_db

URL = "/admin/stats/organization/cache/"


def warm(dashboard) -> dict[str, str]:
    """Cache org A's stats and a unit trend, and org B's stats, through the API."""
    org_a, org_b, unit = dashboard.org_a, dashboard.org_b, dashboard.units_a[1]
    assert dashboard.client.get(f"/api/orgs/{org_a.id}/stats").status_code == 200
    assert dashboard.client.get(f"/api/orgs/{org_a.id}/units/{unit.id}/trends").status_code == 200
    assert dashboard.outsider_client.get(f"/api/orgs/{org_b.id}/stats").status_code == 200
    return {
        "a_stats": cache_key(QueryType.STATS, org_a.id),
        "a_trend": cache_key(QueryType.TEMPERATURE_TRENDS, org_a.id, unit.id),
        "b_stats": cache_key(QueryType.STATS, org_b.id),
    }


def staff_client(*permissions: str) -> Client:
    person = factories.user(is_staff=True)
    person.user_permissions.add(*Permission.objects.filter(codename__in=permissions))
    client = Client()
    client.force_login(person)
    return client


@pytest.fixture
def superuser_client() -> Client:
    client = Client()
    client.force_login(factories.user(is_staff=True, is_superuser=True))
    return client


def test_anonymous_and_non_staff_users_are_sent_to_the_admin_login(dashboard):
    for client in (Client(), dashboard.client):
        response = client.get(URL)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_staff_without_organization_permissions_are_refused():
    assert staff_client().get(URL).status_code == 403


def test_it_lists_keys_by_organization_with_ttl_size_and_value(dashboard, superuser_client, redis_client):
    keys = warm(dashboard)

    response = superuser_client.get(URL)

    assert response.status_code == 200
    body = response.content.decode()
    for key in keys.values():
        assert f'data-key="{key}"' in body
    assert "Alpha" in body and "Bravo" in body
    # Org A's group holds its two keys, grouped by query type.
    groups = {g.split('"', 1)[0]: g for g in body.split('data-testid="cache-org" data-org-id="')[1:]}
    assert keys["a_stats"] in groups[str(dashboard.org_a.id)] and keys["a_trend"] in groups[str(dashboard.org_a.id)]
    assert keys["b_stats"] in groups[str(dashboard.org_b.id)] and keys["a_stats"] not in groups[str(dashboard.org_b.id)]
    row = body[body.index(f'data-key="{keys["a_stats"]}"') :]
    ttl = int(re.search(r'data-testid="ttl">(\d+) s<', row).group(1))
    assert 0 < ttl <= 60
    size = int(re.search(r'data-testid="size">(\d+) B<', row).group(1))
    assert size == len(redis_client.get(keys["a_stats"]))
    value = html.unescape(re.search(r'data-testid="value">(.*?)</pre>', row, re.S).group(1))
    assert f'"organizationId": "{dashboard.org_a.id}"' in value
    assert "\n  " in value  # pretty-printed


def test_cached_values_are_escaped(superuser_client):
    org = factories.organization("Escapes")
    key = cache_key(QueryType.STATS, org.id)
    cache.set(key, b'{"name": "</pre><script>alert(1)</script>"}')

    body = superuser_client.get(URL).content.decode()

    assert "<script>alert(1)</script>" not in body
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_it_shows_hits_misses_and_hit_rate_by_query_type(dashboard, superuser_client):
    warm(dashboard)
    dashboard.client.get(f"/api/orgs/{dashboard.org_a.id}/stats")  # a hit

    body = superuser_client.get(URL).content.decode()

    row = body[body.index('data-query-type="stats"') :]
    hits = metric("dashboard_cache_hit_total", query_type="stats")
    misses = metric("dashboard_cache_miss_total", query_type="stats")
    assert f'data-testid="hits">{hits:.0f}<' in row
    assert f'data-testid="misses">{misses:.0f}<' in row
    assert f'data-testid="hit-rate">{100 * hits / (hits + misses):.1f} %<' in row


def test_a_superuser_deletes_one_key(dashboard, superuser_client, redis_client):
    keys = warm(dashboard)

    response = superuser_client.post(URL, {"action": "delete_key", "key": keys["a_trend"]})

    assert response.status_code == 302
    assert redis_client.exists(keys["a_trend"]) == 0
    assert redis_client.exists(keys["a_stats"]) == 1
    assert f"Deleted {keys['a_trend']}" in superuser_client.get(URL).content.decode()


def test_a_superuser_invalidates_one_organization_with_its_unit_keys(dashboard, superuser_client, redis_client):
    keys = warm(dashboard)

    response = superuser_client.post(URL, {"action": "invalidate_org", "org_id": str(dashboard.org_a.id)})

    assert response.status_code == 302
    assert redis_client.exists(keys["a_stats"], keys["a_trend"]) == 0
    assert redis_client.exists(keys["b_stats"]) == 1
    assert "Invalidated Alpha: 2 key(s) deleted" in superuser_client.get(URL).content.decode()


def test_only_dashboard_keys_can_be_deleted(dashboard, superuser_client, redis_client):
    warm(dashboard)
    principal = cache.principal_key(dashboard.member.pk)
    assert redis_client.exists(principal) == 1

    for key in [principal, "dashboard:stats:org:not-a-uuid", "dashboard:nope:org:" + str(dashboard.org_a.id)]:
        response = superuser_client.post(URL, {"action": "delete_key", "key": key})
        assert response.status_code == 400, key
    assert redis_client.exists(principal) == 1


def test_staff_with_view_permission_see_keys_but_no_controls(dashboard):
    keys = warm(dashboard)

    body = staff_client("view_organization").get(URL).content.decode()

    assert f'data-key="{keys["a_stats"]}"' in body
    assert 'data-testid="read-only"' in body
    assert 'data-testid="delete-key"' not in body
    assert 'data-testid="invalidate-org"' not in body


@pytest.mark.parametrize("action", ["delete_key", "invalidate_org"])
def test_a_forged_post_from_staff_without_change_permission_is_refused(dashboard, redis_client, action):
    keys = warm(dashboard)
    client = staff_client("view_organization")

    response = client.post(URL, {"action": action, "key": keys["a_stats"], "org_id": str(dashboard.org_a.id)})

    assert response.status_code == 403
    assert redis_client.exists(keys["a_stats"], keys["a_trend"]) == 2


def test_posts_need_a_csrf_token(dashboard, redis_client):
    keys = warm(dashboard)
    client = Client(enforce_csrf_checks=True)
    client.force_login(factories.user(is_staff=True, is_superuser=True))

    response = client.post(URL, {"action": "delete_key", "key": keys["a_stats"]})

    assert response.status_code == 403
    assert redis_client.exists(keys["a_stats"]) == 1


def test_the_organization_changelist_links_to_the_inspector(superuser_client):
    body = superuser_client.get("/admin/stats/organization/").content.decode()

    assert f'href="{URL}"' in body


def test_it_says_so_when_redis_is_down(superuser_client, redis_down):
    response = superuser_client.get(URL)

    assert response.status_code == 200
    assert 'data-testid="redis-unavailable"' in response.content.decode()
