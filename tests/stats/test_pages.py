"""The dashboard pages: who gets which page, and what the page tells its script."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client, override_settings

from stats import queries
from stats.models import Membership, Role
from tests import factories

pytestmark = pytest.mark.django_db


def page_config(response) -> dict:
    pattern = r'<script id="dashboard-config" type="application/json">(.*?)</script>'
    match = re.search(pattern, response.content.decode())
    assert match, "the dashboard page embeds its config"
    return json.loads(match.group(1))


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", ["/", "/orgs/00000000-0000-0000-0000-000000000001/"])
def test_it_sends_anonymous_visitors_to_the_login_page(path):
    response = Client().get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_it_redirects_a_member_of_one_organization_straight_to_its_dashboard(dashboard):
    response = dashboard.client.get("/")

    assert response.status_code == 302
    assert response["Location"] == f"/orgs/{dashboard.org_a.id}/"


def test_it_lists_every_organization_of_a_member_of_several(dashboard):
    Membership.objects.create(user=dashboard.member, organization=dashboard.org_b, role=Role.VIEWER)

    response = dashboard.client.get("/")

    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('data-testid="org-link"') == 2
    assert f'href="/orgs/{dashboard.org_a.id}/"' in body and f'href="/orgs/{dashboard.org_b.id}/"' in body
    assert "Alpha" in body and "Bravo" in body


def test_it_tells_a_user_without_organizations_so():
    response = logged_in(factories.user()).get("/")

    assert response.status_code == 200
    assert 'data-testid="no-orgs"' in response.content.decode()


def test_it_answers_404_to_a_non_member(dashboard):
    response = dashboard.outsider_client.get(f"/orgs/{dashboard.org_a.id}/")

    assert response.status_code == 404


def test_it_answers_404_for_an_organization_that_does_not_exist(dashboard):
    assert dashboard.client.get("/orgs/6f1c1a52-5b0e-4a43-9d0b-2f4f3c1f0e11/").status_code == 404


def test_the_dashboard_tells_a_manager_it_may_manage_alerts(dashboard):
    response = dashboard.client.get(f"/orgs/{dashboard.org_a.id}/")

    assert response.status_code == 200
    config = page_config(response)
    assert config == {
        "orgId": str(dashboard.org_a.id),
        "role": "manager",
        "canManageAlerts": True,
        "apiBase": f"/api/orgs/{dashboard.org_a.id}",
        "wsPath": f"/ws/orgs/{dashboard.org_a.id}/",
        "pickerUrl": "/",
        "queries": {q.name: q.path for q in queries.QUERIES if q.on_page},
        "refetch": queries.page_refetch(),
        "patches": queries.page_patches(),
    }
    body = response.content.decode()
    assert 'data-testid="ws-status"' in body
    assert '<script src="/static/stats/dashboard.js" defer></script>' in body


@pytest.mark.parametrize("role", [Role.STAFF, Role.VIEWER])
def test_the_dashboard_tells_other_roles_they_may_not_manage_alerts(dashboard, role):
    person = factories.member(dashboard.org_a, role=role)

    config = page_config(logged_in(person).get(f"/orgs/{dashboard.org_a.id}/"))

    assert config["role"] == role
    assert config["canManageAlerts"] is False


def test_the_organization_name_is_escaped():
    org = factories.organization("<img src=x onerror=alert(1)>")
    person = factories.member(org, role=Role.OWNER)

    body = logged_in(person).get(f"/orgs/{org.id}/").content.decode()

    assert "<img src=x" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body


@override_settings(DEBUG=False)
@pytest.mark.parametrize(
    ("path", "content_type"), [("stats/dashboard.js", "text/javascript"), ("stats/dashboard.css", "text/css")]
)
def test_the_app_serves_its_own_static_files_with_debug_off(path, content_type):
    response = Client().get(f"/static/{path}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)


@override_settings(DEBUG=False)
def test_static_serving_does_not_leave_the_static_directories():
    client = Client(raise_request_exception=False)  # Django answers SuspiciousFileOperation with 400

    for path in ["/static/../settings.py", "/static/stats/../../pages.py", "/static/stats/nope.js"]:
        assert client.get(path).status_code in (400, 404), path


def test_the_login_page_is_a_plain_form_in_the_site_layout():
    body = Client().get("/accounts/login/?next=/").content.decode()

    assert 'action="/accounts/login/"' in body
    assert 'name="csrfmiddlewaretoken"' in body
    assert 'name="username"' in body and 'name="password"' in body
    assert 'href="/static/stats/dashboard.css"' in body
