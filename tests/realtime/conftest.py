from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from stats.models import Role
from tests import factories

_f_cnt = itertools.count(1)


def uplink(
    dev_eui: str,
    temperature: object = 4.0,
    *,
    at: datetime | None = None,
    f_cnt: int | None = None,
    payload_key: str = "temperature",
    **decoded: object,
) -> dict:
    at = at or timezone.now()
    return {
        "end_device_ids": {"device_id": "sensor", "dev_eui": dev_eui},
        "received_at": at.isoformat().replace("+00:00", "Z"),
        "uplink_message": {
            "f_cnt": next(_f_cnt) if f_cnt is None else f_cnt,
            "decoded_payload": {payload_key: temperature, "battery_v": 3.6, **decoded},
            "rx_metadata": [{"gateway_ids": {"gateway_id": "gw"}, "rssi": -71}, {"rssi": -90}],
            "received_at": at.isoformat().replace("+00:00", "Z"),
        },
    }


@dataclass
class Site:
    org: object
    other_org: object
    units: list
    devices: list
    other_device: object
    client: Client
    viewer_client: Client

    def post(self, body: object, *, secret: str | None = None, raw: bytes | None = None, capture=None):
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"HTTP_X_WEBHOOK_SECRET": self.org.webhook_secret if secret is None else secret}
        return Client().post("/api/webhooks/ttn", data=data, content_type="application/json", **headers)


@pytest.fixture
def site(db) -> Site:
    org, other = factories.organization("Ice"), factories.organization("Other")
    units = [factories.unit(org, name="Fridge A"), factories.unit(org, name="Fridge B")]
    devices = [factories.device(u) for u in units]
    other_device = factories.device(factories.unit(other))
    manager = factories.member(org, role=Role.MANAGER)
    viewer = factories.member(org, role=Role.VIEWER)
    client, viewer_client = Client(), Client()
    client.force_login(manager)
    viewer_client.force_login(viewer)
    return Site(org, other, units, devices, other_device, client, viewer_client)


@pytest.fixture
def post(site, django_capture_on_commit_callbacks):
    """POST an uplink and run what the commit triggers (invalidation, broadcast)."""

    def send(body: object = None, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return site.post(body, **kwargs)

    return send


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
