"""The query catalogue is the one place a query type is declared: a new one needs one entry and one
selector, and nothing a cached query reads can change without a declared effect on it."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import clear_url_caches

from stats import queries, selectors
from stats.admin import AnnouncingAdmin
from stats.fast_path import _route
from stats.models import Role, Site
from stats.signals import membership_changed, site_changed
from tests import factories

pytestmark = pytest.mark.django_db

# The changes stats' own model signals make (the admin announces ORG_CHANGED for the rest).
SIGNALLED = {queries.MEMBERSHIP: membership_changed, queries.SITE: site_changed}


def test_every_model_a_cached_query_reads_has_a_declared_change_that_updates_it():
    for query in queries.cached():
        for model in query.reads:
            writers = [change for change in queries.CHANGES if model in change.writes]
            assert writers, f"{query.name} reads {model.__name__}, which no declared change writes"
            # Not counting orgChanged: it covers the admin's edits only (the next test), never the
            # uplinks, alert actions and sweeps that write these models all day.
            covered = [c for c in writers if c is not queries.ORG_CHANGED and query.effect_of(c) is not None]
            assert covered, f"{query.name} reads {model.__name__}; no change that writes it affects {query.name}"


def test_every_model_the_catalogue_reads_is_announced_when_edited_in_the_admin_or_signalled():
    read = {model for query in queries.cached() for model in query.reads}
    signalled = {model for change in SIGNALLED for model in change.writes}
    for model in read - signalled:
        model_admin = admin.site._registry.get(model)
        assert model_admin is None or isinstance(model_admin, AnnouncingAdmin), (
            f"{model.__name__} is editable in the admin without announcing the edit: cached figures would lag"
        )


def test_the_page_is_served_the_catalogues_refetch_and_patch_maps(client_member):
    client, org = client_member
    page = client.get(f"/orgs/{org.id}/").content.decode()
    config = json.loads(re.search(r'id="dashboard-config" type="application/json">(.*?)</script>', page).group(1))
    assert config["refetch"] == queries.page_refetch()
    assert config["refetch"]["reading"] == ["stats", "temperature:trends", "units"]  # compliance, trend, card
    assert config["queries"]["temperature:trends"] == "units/{unit}/trends"
    # What a reading's event may carry for the page to paint instead of refetching.
    assert config["patches"] == queries.page_patches()
    assert config["patches"]["reading"] == ["stats", "temperature:trends"]
    assert config["patches"]["unitUpdate"] == []


@pytest.fixture
def client_member():
    org = factories.organization("Catalogue")
    user = factories.member(org, role=Role.VIEWER)
    client = Client()
    client.force_login(user)
    return client, org


def _reload_urls() -> None:
    import dashboard_project.urls
    import stats.urls

    importlib.reload(stats.urls)
    importlib.reload(dashboard_project.urls)
    clear_url_caches()
    _route.cache_clear()


@pytest.fixture
def sites_count(monkeypatch) -> Iterator[queries.Query]:
    """A query type added the documented way: one catalogue entry and one selector."""

    def site_count(*, org_id):
        return {"sites": Site.objects.filter(organization_id=org_id).count()}

    monkeypatch.setattr(selectors, "site_count", site_count, raising=False)
    query = queries.Query(
        "sites:count", "SITES_COUNT", "sites/count", queries.Scope.ORG, "site_count",
        reads=(Site,), effects={queries.SITE: queries.Effect.INVALIDATE},
    )  # fmt: skip
    queries.QUERIES.append(query)
    _reload_urls()
    yield query
    queries.QUERIES.remove(query)
    _reload_urls()


def test_a_query_added_through_the_catalogue_gets_its_endpoint_key_invalidation_and_inspector_row(
    sites_count, client_member, redis_client, django_capture_on_commit_callbacks
):
    client, org = client_member
    Site.objects.create(organization=org, name="North")
    key = f"dashboard:sites:count:org:{org.id}"

    first = client.get(f"/api/orgs/{org.id}/sites/count")
    assert (first.status_code, first.json()) == (200, {"sites": 1})
    assert redis_client.get(key) == first.content
    assert 0 < redis_client.ttl(key) <= 60
    assert client.get(f"/api/orgs/{org.id}/sites/count").content == first.content  # a hit, byte for byte

    with django_capture_on_commit_callbacks(execute=True):
        Site.objects.create(organization=org, name="South")
    assert redis_client.get(key) is None  # the declared change invalidated it
    assert client.get(f"/api/orgs/{org.id}/sites/count").json() == {"sites": 2}

    staff = Client()
    staff.force_login(factories.user(is_staff=True, is_superuser=True))
    inspector = staff.get(f"/admin/stats/organization/cache/?org={org.id}").content.decode()
    assert "sites:count" in inspector and key in inspector


def test_a_value_computed_from_another_is_altered_by_no_change_that_leaves_the_other_as_it_was():
    for query in queries.cached():
        if query.part_of is None:
            continue
        whole, _ = query.part_of
        parent = queries.by_name(whole)
        assert parent is not None and parent.cached and parent.scope is queries.Scope.ORG, query.name
        for change in query.effects:
            assert parent.effect_of(change) is not None, f"{change.name} alters {query.name} but not {whole}"


@pytest.mark.parametrize("name", [q.name for q in queries.QUERIES if q.part_of])
def test_a_count_missed_while_the_stats_are_cached_costs_no_query_and_equals_its_selector(
    name, client_member, redis_client, django_assert_num_queries
):
    from stats import services

    client, org = client_member
    unit = factories.unit(org, name="Cold room")
    factories.alert(unit)
    query = queries.by_name(name)
    services.query_json("stats", org_id=org.id)  # the stats cached, as the page keeps them
    key = f"dashboard:{name}:org:{org.id}"
    assert redis_client.get(key) is None

    with django_assert_num_queries(0):
        computed = services.query_json(name, org_id=org.id)

    assert computed == services.json_bytes(query.select(org_id=org.id))  # byte for byte
    assert redis_client.get(key) == computed
