"""Edits made in the admin reach the dashboards: once they commit, every key of each organization
they touched is gone and its open dashboards receive `orgChanged` (they reload everything).

No dashboard event describes a threshold edited, a device moved or a reading deleted; without
this the cached trend would show the old alarm band until its TTL.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from stats import selectors
from stats.models import Device, TemperatureReading, Unit
from tests import factories

pytestmark = pytest.mark.django_db

ORG_CHANGED = {"type": "dashboard.events", "events": [{"type": "orgChanged", "data": {}}]}


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(factories.user(is_staff=True, is_superuser=True))
    return client


def org_keys(redis_client, org) -> set[str]:
    return {key.decode() for key in redis_client.scan_iter(f"dashboard:*:org:{org.id}*")}


def warm(dashboard) -> None:
    """Every organization-wide key of both organizations, and org A's trends."""
    for client, org in ((dashboard.client, dashboard.org_a), (dashboard.outsider_client, dashboard.org_b)):
        for path in ("stats", "units/status", "alerts/count", "devices/online"):
            assert client.get(f"/api/orgs/{org.id}/{path}").status_code == 200
    for unit in dashboard.units_a:
        assert dashboard.client.get(f"/api/orgs/{dashboard.org_a.id}/units/{unit.id}/trends").status_code == 200


def split(moment) -> dict[str, str]:
    """The admin's split date/time widget values for a datetime (or empty)."""
    if moment is None:
        return {"0": "", "1": ""}
    local = timezone.localtime(moment)
    return {"0": local.strftime("%Y-%m-%d"), "1": local.strftime("%H:%M:%S")}


def unit_form(unit: Unit, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "organization": unit.organization_id,
        "site": unit.site_id,
        "name": unit.name,
        "unit_type": unit.unit_type,
        "temp_min": unit.temp_min,
        "temp_max": unit.temp_max,
        "status": unit.status,
        "last_temperature": "" if unit.last_temperature is None else unit.last_temperature,
    }
    for field in ("excursion_started_at", "restoring_since", "last_reading_at"):
        for part, value in split(getattr(unit, field)).items():
            data[f"{field}_{part}"] = value
    data.update(changes)
    return data


def device_form(device: Device, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "organization": device.organization_id,
        "unit": device.unit_id or "",
        "dev_eui": device.dev_eui,
        "brand_id": device.brand_id,
        "model_id": device.model_id,
        "temperature_path": device.temperature_path,
        "temperature_unit": device.temperature_unit,
    }
    data.update(changes)
    return data


def trend_states(dashboard, unit: Unit) -> list[str]:
    body = dashboard.client.get(f"/api/orgs/{dashboard.org_a.id}/units/{unit.id}/trends").json()
    return [point["alarmState"] for point in body["points"]]


def test_a_threshold_edited_in_the_admin_clears_the_organization_and_tells_its_dashboards(
    dashboard, admin_client, redis_client, subscribe, django_capture_on_commit_callbacks
):
    ok = dashboard.units_a[1]  # readings of 3, 4, 11 and 5 °C in one bucket, against 2-8 °C
    warm(dashboard)
    assert trend_states(dashboard, ok) == ["too_hot"]
    others = org_keys(redis_client, dashboard.org_b)
    assert len(org_keys(redis_client, dashboard.org_a)) == 7 and len(others) == 4
    received = subscribe(dashboard.org_a.id)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/stats/unit/{ok.id}/change/", unit_form(ok, temp_max=12.0))

    assert response.status_code == 302, response.content[:2000]
    assert Unit.objects.get(pk=ok.pk).temp_max == 12.0
    assert org_keys(redis_client, dashboard.org_a) == set()
    assert org_keys(redis_client, dashboard.org_b) == others
    assert received(1) == [ORG_CHANGED]
    assert trend_states(dashboard, ok) == ["normal"]
    ok.refresh_from_db()
    assert dashboard.client.get(f"/api/orgs/{dashboard.org_a.id}/units/{ok.id}/trends").json()["points"] == (
        selectors.temperature_trends(unit=ok)
    )


def test_a_device_moved_to_another_organization_tells_both(
    dashboard, admin_client, redis_client, subscribe, django_capture_on_commit_callbacks
):
    device = Device.objects.get(unit=dashboard.units_a[1])
    warm(dashboard)
    online_b = dashboard.outsider_client.get(f"/api/orgs/{dashboard.org_b.id}/devices/online").json()
    received_a, received_b = subscribe(dashboard.org_a.id), subscribe(dashboard.org_b.id)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/stats/device/{device.pk}/change/",
            device_form(device, organization=dashboard.org_b.id, unit=dashboard.unit_b.id),
        )

    assert response.status_code == 302, response.content[:2000]
    assert org_keys(redis_client, dashboard.org_a) == set()
    assert org_keys(redis_client, dashboard.org_b) == set()
    assert received_a(1) == [ORG_CHANGED] and received_b(1) == [ORG_CHANGED]
    after = dashboard.outsider_client.get(f"/api/orgs/{dashboard.org_b.id}/devices/online").json()
    assert after != online_b


def test_readings_deleted_with_the_admin_action_leave_no_cached_trend(
    dashboard, admin_client, redis_client, subscribe, django_capture_on_commit_callbacks
):
    ok = dashboard.units_a[1]
    warm(dashboard)
    assert trend_states(dashboard, ok) == ["too_hot"]
    received = subscribe(dashboard.org_a.id)
    ids = list(TemperatureReading.objects.filter(unit=ok).values_list("pk", flat=True))

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/stats/temperaturereading/",
            {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
        )

    assert response.status_code == 302
    assert not TemperatureReading.objects.filter(unit=ok).exists()
    assert org_keys(redis_client, dashboard.org_a) == set()
    assert received(1) == [ORG_CHANGED]
    assert trend_states(dashboard, ok) == []


def test_an_edit_the_form_refuses_changes_and_announces_nothing(
    dashboard, admin_client, redis_client, django_capture_on_commit_callbacks
):
    ok = dashboard.units_a[1]
    warm(dashboard)
    cached = org_keys(redis_client, dashboard.org_a)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client.post(f"/admin/stats/unit/{ok.id}/change/", unit_form(ok, temp_max="warm"))

    assert response.status_code == 200 and b"errornote" in response.content
    assert Unit.objects.get(pk=ok.pk).temp_max == 8.0
    assert callbacks == []
    assert org_keys(redis_client, dashboard.org_a) == cached
