"""A browser POST without its CSRF token is refused with a JSON 403 on the API."""

from __future__ import annotations

import pytest
from django.test import Client

from stats.models import Role
from tests import factories

pytestmark = pytest.mark.django_db


def test_an_alert_action_without_the_csrf_token_gets_a_json_403_and_changes_nothing():
    org = factories.organization()
    alert = factories.alert(factories.unit(org))
    client = Client(enforce_csrf_checks=True)
    client.force_login(factories.member(org, role=Role.MANAGER))
    response = client.post(f"/api/orgs/{org.id}/alerts/{alert.id}/resolve")
    assert response.status_code == 403
    assert response.json()["error"] == "CSRF check failed"
    alert.refresh_from_db()
    assert alert.status == "active"
