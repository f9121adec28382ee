"""Acceptance 8: with Redis stopped, uplinks are still stored; failed invalidations and sends are counted."""

from __future__ import annotations

import pytest
from django.test import override_settings

from realtime import broadcast
from stats.models import TemperatureReading, UnitStatus
from tests.conftest import metric
from tests.realtime.conftest import uplink

pytestmark = pytest.mark.django_db


def test_uplinks_are_stored_and_failures_counted_when_redis_is_down(site, post, redis_down, closed_port):
    layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{closed_port}/12"]},
        }
    }
    invalidate = metric("dashboard_broadcast_errors_total", stage="invalidate")
    send = metric("dashboard_broadcast_errors_total", stage="send")
    with override_settings(CHANNEL_LAYERS=layers):
        ok = post(uplink(site.devices[0].dev_eui, 4.0))
        hot = post(uplink(site.devices[1].dev_eui, 13.0))
        assert broadcast.sends_flush()
    assert (ok.status_code, hot.status_code) == (200, 200)
    assert hot.json()["unitStatus"] == UnitStatus.EXCURSION
    assert TemperatureReading.objects.count() == 2
    assert metric("dashboard_broadcast_errors_total", stage="invalidate") == invalidate + 2
    assert metric("dashboard_broadcast_errors_total", stage="send") == send + 2
    # and the numbers served meanwhile come from the database
    assert site.client.get(f"/api/orgs/{site.org.id}/stats").json()["unitCounts"]["warning"] == 1
