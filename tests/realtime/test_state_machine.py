"""Acceptance 4: the excursion path, each step visible in the stats API at once."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.utils import timezone

from stats.models import Alert, AlertStatus, UnitStatus
from tests.realtime.conftest import minutes, uplink

pytestmark = pytest.mark.django_db


def stats(site) -> dict:
    response = site.client.get(f"/api/orgs/{site.org.id}/stats")
    assert response.status_code == 200
    return response.json()


@override_settings(ALARM_CONFIRM_DELAY_SECONDS=600, RESTORE_STABLE_SECONDS=600)
def test_excursion_escalates_after_the_confirm_delay_and_resolves_with_hysteresis(site, post):
    unit, dev = site.units[0], site.devices[0].dev_eui
    start = timezone.now() - minutes(30)
    assert stats(site)["unitCounts"]["normal"] == 2  # cached now: every step below must invalidate it

    body = post(uplink(dev, 9.5, at=start)).json()
    assert body["unitStatus"] == UnitStatus.EXCURSION
    assert set(body["events"]) >= {"unitUpdate", "alertCreated"}
    s = stats(site)
    assert (s["unitCounts"]["warning"], s["unitCounts"]["too_hot"], s["alertCounts"]["active"]) == (1, 1, 1)

    # Still out 9 minutes after the excursion began: not yet confirmed.
    assert post(uplink(dev, 9.7, at=start + minutes(9))).json()["unitStatus"] == UnitStatus.EXCURSION
    # 10 minutes after it began (not after the last reading): alarm, alert escalated.
    body = post(uplink(dev, 9.6, at=start + minutes(10))).json()
    assert body["unitStatus"] == UnitStatus.ALARM_ACTIVE
    assert "alertEscalated" in body["events"]
    s = stats(site)
    assert (s["unitCounts"]["critical"], s["alertCounts"]["escalated"], s["worstState"]) == (1, 1, "critical")
    assert Alert.objects.get(unit=unit).severity == Alert.Severity.CRITICAL

    # Back inside but within 0.5 °C of the limit: hysteresis keeps the alarm.
    assert post(uplink(dev, 7.8, at=start + minutes(11))).json()["unitStatus"] == UnitStatus.ALARM_ACTIVE
    body = post(uplink(dev, 7.2, at=start + minutes(12))).json()
    assert body["unitStatus"] == UnitStatus.RESTORING
    assert "alertResolved" in body["events"]
    s = stats(site)
    assert (s["unitCounts"]["normal"], s["unitCounts"]["critical"], s["alertCounts"]["unresolved"]) == (2, 0, 0)
    assert s["alertCounts"]["resolved"] == 1

    # Stable for the restore period: ok.
    assert post(uplink(dev, 5.0, at=start + minutes(15))).json()["unitStatus"] == UnitStatus.RESTORING
    assert post(uplink(dev, 5.0, at=start + minutes(22))).json()["unitStatus"] == UnitStatus.OK


def test_a_too_cold_reading_opens_a_min_threshold_alert(site, post):
    post(uplink(site.devices[1].dev_eui, 0.5))
    alert = Alert.objects.get(unit=site.units[1])
    assert (alert.threshold_violated, alert.status) == (Alert.Threshold.MIN, AlertStatus.ACTIVE)
    assert stats(site)["unitCounts"]["too_cold"] == 1


def test_a_late_reading_is_stored_but_does_not_drive_the_state(site, post):
    dev = site.devices[0].dev_eui
    post(uplink(dev, 4.0))
    body = post(uplink(dev, 12.0, at=timezone.now() - minutes(20))).json()
    assert body["status"] == "stored"
    assert body["unitStatus"] == UnitStatus.OK
    site.units[0].refresh_from_db()
    assert site.units[0].last_temperature == 4.0


def test_managers_acknowledge_and_resolve_alerts_and_viewers_may_not(site, post, django_capture_on_commit_callbacks):
    from django.test import Client

    post(uplink(site.devices[0].dev_eui, 11.0))
    alert = Alert.objects.get()
    base = f"/api/orgs/{site.org.id}/alerts/{alert.id}"
    assert stats(site)["alertCounts"]["active"] == 1
    assert site.viewer_client.post(f"{base}/acknowledge").status_code == 403
    assert Client().post(f"{base}/acknowledge").status_code == 401
    assert site.client.get(f"/api/orgs/{site.org.id}/alerts").json()["alerts"][0]["id"] == alert.id

    with django_capture_on_commit_callbacks(execute=True):
        acknowledged = site.client.post(f"{base}/acknowledge")
    assert acknowledged.json()["status"] == AlertStatus.ACKNOWLEDGED
    assert stats(site)["alertCounts"] == {
        "unresolved": 1,
        "active": 0,
        "acknowledged": 1,
        "escalated": 0,
        "resolved": 0,
    }

    with django_capture_on_commit_callbacks(execute=True):
        resolved = site.client.post(f"{base}/resolve")
    assert resolved.json()["status"] == AlertStatus.RESOLVED
    assert stats(site)["alertCounts"]["unresolved"] == 0
    alert.refresh_from_db()
    assert alert.resolved_by_id is not None and alert.acknowledged_by_id is not None
    assert site.client.post(f"/api/orgs/{site.org.id}/alerts/999999/resolve").status_code == 404
    assert site.client.post(f"/api/orgs/{site.other_org.id}/alerts/{alert.id}/resolve").status_code == 404
