"""The admin cache inspector: what staff see, and who may delete keys or invalidate an org."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from stats import cache, queries
from stats.admin_inspector import ORGS_PER_PAGE
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


def org_url(org) -> str:
    return f"{URL}?org={org.id}"


def test_one_organizations_keys_are_read_through_its_index_with_ttl_size_and_value(
    dashboard, superuser_client, redis_client
):
    keys = warm(dashboard)

    response = superuser_client.get(org_url(dashboard.org_a))

    assert response.status_code == 200
    body = response.content.decode()
    section = body[body.index('data-testid="cache-org"') :]
    assert f'data-org-id="{dashboard.org_a.id}"' in section.split(">", 1)[0]
    assert f'data-key="{keys["a_stats"]}"' in section and f'data-key="{keys["a_trend"]}"' in section
    assert f'data-key="{keys["b_stats"]}"' not in body  # another organization's keys are not listed
    row = body[body.index(f'data-key="{keys["a_stats"]}"') :]
    ttl = int(re.search(r'data-testid="ttl">(\d+) s<', row).group(1))
    assert 0 < ttl <= redis_client.ttl(keys["a_stats"]) + 1
    size = int(re.search(r'data-testid="size">(\d+) B<', row).group(1))
    assert size == len(redis_client.get(keys["a_stats"]))
    value = html.unescape(re.search(r'data-testid="value">(.*?)</pre>', row, re.S).group(1))
    assert f'"organizationId": "{dashboard.org_a.id}"' in value
    assert "\n  " in value  # pretty-printed


def test_the_organization_list_is_searched_and_paged_with_each_ones_key_count(dashboard, superuser_client):
    warm(dashboard)
    for n in range(ORGS_PER_PAGE + 5):
        factories.organization(f"Zulu {n:02d}")

    first = superuser_client.get(URL).content.decode()
    assert first.count('data-testid="org-row"') == ORGS_PER_PAGE
    assert 'data-testid="page-next"' in first
    assert 'data-testid="cache-key"' not in first  # no values until one organization is chosen
    row = first[first.index(f'data-org-id="{dashboard.org_a.id}"') :]
    assert re.search(r'data-testid="org-key-count">(\d+)<', row).group(1) == "2"

    second = superuser_client.get(f"{URL}?page=2").content.decode()
    assert second.count('data-testid="org-row"') == 2 + ORGS_PER_PAGE + 5 - ORGS_PER_PAGE

    found = superuser_client.get(f"{URL}?q=bravo").content.decode()
    assert re.findall(r'data-testid="org-row" data-org-id="([^"]+)"', found) == [str(dashboard.org_b.id)]
    row = found[found.index(f'data-org-id="{dashboard.org_b.id}"') :]
    assert re.search(r'data-testid="org-key-count">(\d+)<', row).group(1) == "1"


def test_each_query_types_policy_comes_from_the_catalogue(superuser_client):
    body = superuser_client.get(URL).content.decode()

    rows = dict(re.findall(r'data-testid="policy-row" data-query-type="([^"]+)">(.*?)</tr>', body, re.S))
    assert set(rows) == {query.name for query in queries.cached()}
    for query in queries.cached():
        assert f'data-testid="policy-ttl">{query.ttl_seconds()} s<' in rows[query.name]
        assert f"<code>{query.path}</code>" in rows[query.name]
        for change, effect in query.effects.items():
            assert f"{change.name}: {effect}" in rows[query.name]


def test_the_admin_index_links_the_inspector(superuser_client):
    body = superuser_client.get("/admin/").content.decode()

    assert re.search(rf'href="{re.escape(URL)}" data-testid="cache-inspector-link"', body)
    assert 'data-testid="cache-inspector-link"' not in staff_client().get("/admin/").content.decode()


def test_counters_are_summed_over_every_process_of_the_host(superuser_client, tmp_path, monkeypatch):
    """Two other processes count hits in the multiprocess directory; the page shows their sum."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for hits in (3, 4):
        code = (
            "import django; django.setup(); from stats.cache.metrics import CACHE_HIT, CACHE_MISS; "
            f"CACHE_HIT.labels('stats').inc({hits}); CACHE_MISS.labels('stats').inc(1)"
        )
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    body = superuser_client.get(URL).content.decode()

    assert 'data-counted-in="every process of this host"' in body
    row = body[body.index('data-testid="counter-row" data-query-type="stats"') :]
    assert 'data-testid="hits">7<' in row and 'data-testid="misses">2<' in row


def test_keys_of_an_organization_that_no_longer_exists_are_found_and_swept(dashboard, superuser_client, redis_client):
    keys = warm(dashboard)
    gone = uuid.uuid4()  # e.g. deleted while Redis was down, so its keys were never swept
    orphan = cache_key(QueryType.STATS, gone)
    assert cache.set(orphan, b"{}")

    body = superuser_client.get(f"{URL}?orphans=1").content.decode()

    assert re.findall(r'data-testid="orphan" data-org-id="([^"]+)"', body) == [str(gone)]
    refused = superuser_client.post(URL, {"action": "sweep_orphan", "org_id": str(dashboard.org_a.id)})
    assert refused.status_code == 400
    assert redis_client.exists(keys["a_stats"]) == 1

    response = superuser_client.post(URL, {"action": "sweep_orphan", "org_id": str(gone)})

    assert response.status_code == 302
    assert redis_client.exists(orphan, cache.index_key(str(gone))) == 0
    after = superuser_client.get(f"{URL}?orphans=1").content.decode()
    assert 'data-testid="orphan"' not in after and 'data-testid="no-orphans"' in after
    assert redis_client.exists(keys["a_stats"], keys["b_stats"]) == 2


def test_cached_values_are_escaped(superuser_client):
    org = factories.organization("Escapes")
    key = cache_key(QueryType.STATS, org.id)
    cache.set(key, b'{"name": "</pre><script>alert(1)</script>"}')

    body = superuser_client.get(org_url(org)).content.decode()

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
    assert response["Location"] == org_url(dashboard.org_a)
    assert f"Deleted {keys['a_trend']}" in superuser_client.get(response["Location"]).content.decode()


def test_a_superuser_invalidates_one_organization_with_its_unit_keys(dashboard, superuser_client, redis_client):
    keys = warm(dashboard)

    response = superuser_client.post(URL, {"action": "invalidate_org", "org_id": str(dashboard.org_a.id)})

    assert response.status_code == 302
    assert redis_client.exists(keys["a_stats"], keys["a_trend"]) == 0
    assert redis_client.exists(keys["b_stats"]) == 1
    assert "Invalidated Alpha: 2 key(s) deleted" in superuser_client.get(response["Location"]).content.decode()


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

    body = staff_client("view_organization").get(org_url(dashboard.org_a)).content.decode()

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
    org = factories.organization("Down")
    response = superuser_client.get(f"{URL}?org={org.id}")

    assert response.status_code == 200
    assert 'data-testid="redis-unavailable"' in response.content.decode()
