"""The sensors in the admin: a device's model, where its last reading came from, its last raw
payload, its probe fault and its override; kept uplinks (reprocessed from the list) and unclaimed
devices (registered from the list)."""

from __future__ import annotations

import pytest
from django.test import Client

from stats.models import Device, KeptUplink, TemperatureReading, UnclaimedDevice
from tests import factories
from tests.realtime.conftest import uplink

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(factories.user(is_staff=True, is_superuser=True))
    return client


def _lht65(dev_eui: str, probe: float) -> dict:
    body = uplink(dev_eui)
    body["uplink_message"]["decoded_payload"] = {"TempC_DS": probe, "TempC_SHT": 22.6, "BatV": 3.06}
    body["uplink_message"]["version_ids"] = {"brand_id": "dragino", "model_id": "lht65"}
    return body


def test_a_device_page_shows_its_model_source_payload_and_probe_fault(site, post, admin_client):
    device = site.devices[0]
    post(_lht65(device.dev_eui, -18.25))
    post(_lht65(device.dev_eui, 327.67))
    page = admin_client.get(f"/admin/stats/device/{device.id}/change/").content.decode()
    assert "Dragino LHT65: TempC_DS (C)" in page  # the catalogue entry it reads with
    assert "catalogue:dragino/lht65" in page  # where its last reading came from
    assert "327.67: no reading" in page  # the probe fault
    assert "&quot;TempC_SHT&quot;: 22.6" in page  # the last raw payload
    listing = admin_client.get("/admin/stats/device/").content.decode()
    assert "dragino/lht65" in listing and "327.67" in listing


def test_an_override_with_a_path_that_cannot_be_read_is_refused_by_the_form(site, admin_client):
    device = site.devices[0]
    form = {
        "organization": device.organization_id,
        "unit": device.unit_id,
        "dev_eui": device.dev_eui,
        "brand_id": "",
        "model_id": "",
        "temperature_path": "probes[x",
        "temperature_unit": "C",
    }
    response = admin_client.post(f"/admin/stats/device/{device.id}/change/", form)
    assert response.status_code == 200 and "not a payload path" in response.content.decode()
    assert Device.objects.get(id=device.id).temperature_path == ""
    response = admin_client.post(
        f"/admin/stats/device/{device.id}/change/", {**form, "temperature_path": "probes[1].t"}
    )
    assert response.status_code == 302
    assert Device.objects.get(id=device.id).temperature_path == "probes[1].t"


def test_unmapped_uplinks_are_listed_and_reprocessed_from_the_list(site, post, admin_client):
    device = site.devices[0]
    body = uplink(device.dev_eui)
    body["uplink_message"]["decoded_payload"] = {"temp_a": 4.5, "temp_b": -18.0}
    assert post(body).json()["status"] == "unmapped"
    kept = KeptUplink.objects.get()
    listing = admin_client.get("/admin/stats/keptuplink/").content.decode()
    assert device.dev_eui in listing and "look like temperatures" in listing  # the reason it was kept
    detail = admin_client.get(f"/admin/stats/keptuplink/{kept.id}/change/").content.decode()
    assert "&quot;temp_b&quot;: -18.0" in detail

    Device.objects.filter(id=device.id).update(temperature_path="temp_b", temperature_unit="C")
    response = admin_client.post(
        "/admin/stats/keptuplink/", {"action": "reprocess", "_selected_action": [kept.id]}, follow=True
    )
    assert "Reprocessed: 1 stored" in response.content.decode()
    assert list(TemperatureReading.objects.values_list("temperature", flat=True)) == [-18.0]
    assert not KeptUplink.objects.exists()


def test_unclaimed_devices_are_listed_with_a_link_that_registers_them(site, post, admin_client):
    body = uplink("ABCDEF0123456789", 4.0)
    body["uplink_message"]["version_ids"] = {"brand_id": "elsys", "model_id": "elt-2"}
    assert post(body).json()["status"] == "unclaimed"
    listing = admin_client.get("/admin/stats/unclaimeddevice/").content.decode()
    assert "ABCDEF0123456789" in listing and "elsys/elt-2" in listing
    assert "/admin/stats/device/add/?dev_eui=ABCDEF0123456789" in listing
    add_form = admin_client.get(
        f"/admin/stats/device/add/?dev_eui=ABCDEF0123456789&organization={site.org.id}&brand_id=elsys&model_id=elt-2"
    ).content.decode()
    assert 'value="ABCDEF0123456789"' in add_form and 'value="elt-2"' in add_form
    response = admin_client.post(
        "/admin/stats/device/add/",
        {"organization": site.org.id, "unit": site.units[1].id, "dev_eui": "ABCDEF0123456789",
         "brand_id": "elsys", "model_id": "elt-2", "temperature_path": "", "temperature_unit": ""},
    )  # fmt: skip
    assert response.status_code == 302
    assert not UnclaimedDevice.objects.exists()
