"""Acceptance 4: an organization's data reaches its members only."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PATHS = ["stats", "units", "units/status", "alerts", "alerts/count", "devices/online"]


def test_org_a_cached_values_are_never_served_for_org_b(dashboard, redis_client):
    a = dashboard.client.get(f"/api/orgs/{dashboard.org_a.id}/stats").json()
    b = dashboard.outsider_client.get(f"/api/orgs/{dashboard.org_b.id}/stats").json()
    assert a["organizationId"] == str(dashboard.org_a.id)
    assert b["organizationId"] == str(dashboard.org_b.id)
    assert (a["unitCounts"]["total"], b["unitCounts"]["total"]) == (3, 1)
    assert redis_client.get(f"dashboard:stats:org:{dashboard.org_b.id}") != redis_client.get(
        f"dashboard:stats:org:{dashboard.org_a.id}"
    )


@pytest.mark.parametrize("path", PATHS)
def test_a_non_member_gets_404_even_when_the_value_is_cached(dashboard, path):
    url = f"/api/orgs/{dashboard.org_a.id}/{path}"
    assert dashboard.client.get(url).status_code == 200  # now cached for org A
    response = dashboard.outsider_client.get(url)
    assert response.status_code == 404
    assert response.json() == {"error": "organization not found"}


@pytest.mark.parametrize("path", PATHS)
def test_an_anonymous_request_gets_401_and_no_data(dashboard, path):
    url = f"/api/orgs/{dashboard.org_a.id}/{path}"
    dashboard.client.get(url)
    response = Client().get(url)
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required"}


def test_my_organizations_lists_only_mine(dashboard):
    orgs = dashboard.client.get("/api/orgs/").json()["organizations"]
    assert [o["id"] for o in orgs] == [str(dashboard.org_a.id)]
    assert orgs[0]["role"] == "manager"
    assert Client().get("/api/orgs/").status_code == 401


def test_a_unit_of_another_organization_is_not_found(dashboard):
    url = f"/api/orgs/{dashboard.org_a.id}/units/{dashboard.unit_b.id}/trends"
    assert dashboard.client.get(url).status_code == 404
    counts = dashboard.client.get(f"/api/orgs/{dashboard.org_a.id}/alerts/count?unit={dashboard.unit_b.id}")
    assert counts.status_code == 404


def test_a_malformed_unit_parameter_is_a_400_and_a_non_uuid_path_a_json_404(dashboard):
    bad = dashboard.client.get(f"/api/orgs/{dashboard.org_a.id}/alerts/count?unit=*")
    assert bad.status_code == 400
    assert bad.json()["field"] == "unit"
    response = dashboard.client.get("/api/orgs/not-a-uuid/stats")
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}


def test_removing_a_membership_revokes_access_at_once(dashboard, django_capture_on_commit_callbacks):
    url = f"/api/orgs/{dashboard.org_a.id}/stats"
    assert dashboard.client.get(url).status_code == 200  # principal now cached
    with django_capture_on_commit_callbacks(execute=True):
        dashboard.member.memberships.all().delete()
    assert dashboard.client.get(url).status_code == 404


def test_a_password_change_ends_other_sessions(dashboard, django_capture_on_commit_callbacks):
    url = f"/api/orgs/{dashboard.org_a.id}/stats"
    assert dashboard.client.get(url).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        dashboard.member.set_password("new-password")
        dashboard.member.save()
    assert dashboard.client.get(url).status_code == 401
