"""The webhook's answers: what TTN never sends is refused with a JSON error and leaves no row; what
it legitimately sends (every device of the application, frames without a temperature) is a 2xx
saying what became of it."""

from __future__ import annotations

import json

import pytest

from stats.models import Alert, Device, KeptUplink, TemperatureReading, UnclaimedDevice, Unit
from tests.realtime.conftest import uplink

pytestmark = pytest.mark.django_db


def _row_counts() -> tuple[int, int, list]:
    return (
        TemperatureReading.objects.count(),
        Alert.objects.count(),
        list(Unit.objects.order_by("id").values_list("status", "last_temperature", "last_reading_at")),
    )


def test_a_valid_uplink_stores_one_reading_and_updates_device_and_unit(site, post):
    response = post(uplink(site.devices[0].dev_eui, 4.25))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "stored"
    reading = TemperatureReading.objects.get(id=body["readingId"])
    assert (reading.temperature, reading.battery_volts, reading.rssi) == (4.25, 3.6, -71)
    assert reading.source == "generic"
    assert reading.unit_id == site.units[0].id
    site.units[0].refresh_from_db()
    assert site.units[0].last_temperature == 4.25
    device = Device.objects.get(id=site.devices[0].id)
    assert device.online and device.last_seen_at is not None


def test_a_duplicate_uplink_returns_200_and_stores_nothing_twice(site, post):
    message = uplink(site.devices[0].dev_eui, 4.0)
    first, second = post(message), post(message)
    assert first.status_code == second.status_code == 200
    assert second.json()["status"] == "duplicate"
    assert TemperatureReading.objects.count() == 1


def test_a_first_uplink_without_f_cnt_and_a_zero_degree_reading_are_accepted(site, post):
    message = uplink(site.devices[0].dev_eui, 0)
    del message["uplink_message"]["f_cnt"]
    response = post(message)
    assert response.status_code == 200, response.content
    assert TemperatureReading.objects.get().temperature == 0.0


@pytest.mark.parametrize(
    "key,value,expected", [("temp", 5.5, 5.5), ("temperature_c", -18, -18.0), ("temperature_f", 41.0, 5.0)]
)
def test_common_decoder_temperature_keys_are_accepted(site, post, key, value, expected):
    response = post(uplink(site.devices[0].dev_eui, value, payload_key=key))
    assert response.status_code == 200, response.content
    assert TemperatureReading.objects.get().temperature == expected


def _with_nan(body: dict) -> bytes:
    return json.dumps(body).replace('"temperature": 1.25', '"temperature": NaN').encode()


def _refused(site) -> list[tuple[str, dict, int, str]]:
    dev = site.devices[0].dev_eui
    return [
        ("bad secret", {"body": uplink(dev), "secret": "nope"}, 401, "X-Webhook-Secret"),
        ("no secret", {"body": uplink(dev), "secret": ""}, 401, "X-Webhook-Secret"),
        ("other org's device", {"body": uplink(site.other_device.dev_eui)}, 403, "another organization"),
        ("malformed JSON", {"body": None, "raw": b'{"end_device_ids": '}, 400, "not valid JSON"),
        ("JSON array", {"body": [1, 2]}, 400, "JSON object"),
        (
            "NaN (not JSON)",
            {
                "body": None,
                "raw": json.dumps(uplink(dev, 1.25)).replace('"temperature": 1.25', '"temperature": NaN').encode(),
            },
            400,
            "not valid JSON",
        ),
        ("bad dev_eui", {"body": uplink("xyz")}, 422, "dev_eui"),
        ("oversized body", {"body": uplink(dev, padding="x" * 20_000)}, 413, "larger than"),
    ]


def test_what_ttn_never_sends_gets_its_status_a_json_error_and_leaves_no_row(site, post):
    for name, kwargs, status, message in _refused(site):
        before = _row_counts(), KeptUplink.objects.count(), UnclaimedDevice.objects.count()
        response = post(**kwargs)
        assert response.status_code == status, name
        assert response["Content-Type"] == "application/json", name
        assert message in response.json()["error"], name
        assert (_row_counts(), KeptUplink.objects.count(), UnclaimedDevice.objects.count()) == before, name


def _accepted(site) -> list[tuple[str, dict, str, str, str | None]]:
    """(case, body, status, words of the reason, what is kept for later)"""
    dev = site.devices[0].dev_eui
    status_frame = uplink(dev)
    status_frame["uplink_message"]["decoded_payload"] = {"battery": 3.1}
    no_decoder = uplink(dev)
    del no_decoder["uplink_message"]["decoded_payload"]
    no_decoder["uplink_message"]["frm_payload"] = "AQID"
    unassigned = Device.objects.create(organization=site.org, dev_eui="00000000000000AA")
    # Assigned by mistake to another organization's unit: its readings must not land there.
    misassigned = Device.objects.create(organization=site.org, unit=site.other_device.unit, dev_eui="00000000000000BB")
    return [
        ("unknown device", {"body": uplink("FFFFFFFFFFFFFFFF")}, "unclaimed", "no device registered", "unclaimed"),
        ("unassigned device", {"body": uplink(unassigned.dev_eui)}, "unassigned", "no unit", "unassigned"),
        ("on another org's unit", {"body": uplink(misassigned.dev_eui)}, "unassigned", "no unit", "unassigned"),
        ("status frame", {"body": status_frame}, "ignored", "no temperature", None),
        ("no decoder", {"body": no_decoder}, "unmapped", "no decoded_payload", "unmapped"),
        ("boolean temperature", {"body": uplink(dev, True)}, "unmapped", "not a temperature", "unmapped"),
        ("probe out of range", {"body": uplink(dev, 1e9)}, "fault", "outside", None),
        ("another temperature beside", {"body": uplink(dev, 4.0, externalTemperature=-18.5)}, "unmapped",
         "externalTemperature", "unmapped"),
    ]  # fmt: skip


def test_what_ttn_legitimately_sends_is_a_2xx_that_stores_no_reading_and_says_why(site, post):
    for name, kwargs, status, words, kept in _accepted(site):
        before = _row_counts()
        response = post(**kwargs)
        assert response.status_code == 200, (name, response.content)
        body = response.json()
        assert body["status"] == status, (name, body)
        assert words in body["reason"], (name, body)
        assert _row_counts()[:2] == before[:2], name
        last = KeptUplink.objects.order_by("-id").first()
        if kept is None:
            assert last is None or last.body != json.loads(kwargs.get("raw") or json.dumps(kwargs["body"])), name
        else:
            assert (last.outcome, last.body["end_device_ids"]) == (kept, json.loads(
                kwargs.get("raw") or json.dumps(kwargs["body"]))["end_device_ids"]), name  # fmt: skip


def test_an_unknown_device_is_listed_as_unclaimed_with_its_model_and_count(site, post):
    body = uplink("FFFFFFFFFFFFFFF1")
    body["uplink_message"]["version_ids"] = {"brand_id": "dragino", "model_id": "lht65"}
    post(body)
    post(uplink("FFFFFFFFFFFFFFF1"))
    listed = UnclaimedDevice.objects.get(dev_eui="FFFFFFFFFFFFFFF1")
    assert (listed.organization_id, listed.uplinks, listed.brand_id, listed.model_id) == (
        site.org.id, 2, "dragino", "lht65"
    )  # fmt: skip


def test_a_timestamp_far_from_now_is_rejected(site, post):
    from django.utils import timezone

    from tests.realtime.conftest import minutes

    response = post(uplink(site.devices[0].dev_eui, at=timezone.now() + minutes(60)))
    assert response.status_code == 422
    assert TemperatureReading.objects.count() == 0


def test_an_uplink_reads_and_locks_its_device_and_unit_in_one_query(site, post):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert post(uplink(site.devices[0].dev_eui, 4.0)).status_code == 200
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    device_reads = [sql for sql in selects if 'FROM "stats_device"' in sql]
    assert len(device_reads) == 1, device_reads
    assert 'JOIN "stats_unit"' in device_reads[0]
    if connection.features.has_select_for_update:
        assert device_reads[0].rstrip().endswith("FOR UPDATE")
    assert not [sql for sql in selects if 'FROM "stats_unit"' in sql]
