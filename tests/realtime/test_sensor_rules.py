"""Which temperature is the product's, through the real webhook: the override first, the normalized
payload checked against the catalogue, the generic keys only when nothing competes; faults are not
readings; a frame of several readings stores them all and only the newest moves the unit."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from stats.models import Device, KeptUplink, TemperatureReading, UnclaimedDevice, UnitStatus
from tests import factories
from tests.conftest import metric
from tests.realtime.conftest import minutes, uplink

pytestmark = pytest.mark.django_db


def _frame(dev_eui: str, payload: dict | None, *, model: tuple[str, str] | None = None, normalized=None, at=None):
    body = uplink(dev_eui, at=at)
    message = body["uplink_message"]
    if payload is None:
        del message["decoded_payload"]
    else:
        message["decoded_payload"] = payload
    if normalized is not None:
        message["normalized_payload"] = normalized
    if model:
        message["version_ids"] = {"brand_id": model[0], "model_id": model[1]}
    return body


def _temperatures(device) -> list[float]:
    return list(
        TemperatureReading.objects.filter(device=device).order_by("recorded_at").values_list("temperature", flat=True)
    )


LHT65 = ("dragino", "lht65")


def test_the_probe_not_the_housing_is_the_product_temperature(site, post):
    device = site.devices[0]
    body = post(_frame(device.dev_eui, {"TempC_DS": -19.5, "TempC_SHT": 22.6, "BatV": 3.06}, model=LHT65)).json()
    assert (body["status"], body["source"]) == ("stored", "catalogue:dragino/lht65")
    assert _temperatures(device) == [-19.5]
    device.refresh_from_db()
    assert (device.brand_id, device.model_id, device.battery_volts) == ("dragino", "lht65", 3.06)


def test_a_probe_sentinel_is_a_fault_shown_on_the_device_never_an_excursion_and_cleared_by_a_reading(site, post):
    device, unit = site.devices[0], site.units[0]
    faults = metric("dashboard_probe_faults_total")
    body = post(_frame(device.dev_eui, {"TempC_DS": 327.67, "TempC_SHT": 22.6}, model=LHT65)).json()
    assert body["status"] == "fault" and "327.67" in body["reason"]
    assert body["events"] == ["deviceStatusChange"]  # the device was online already: the fault is the change
    unit.refresh_from_db()
    device.refresh_from_db()
    assert (unit.status, unit.last_temperature, _temperatures(device)) == (UnitStatus.OK, None, [])
    assert "327.67" in device.probe_fault and device.probe_fault_since is not None
    assert metric("dashboard_probe_faults_total") == faults + 1
    listed = site.client.get(f"/api/orgs/{site.org.id}/units").json()["units"]
    shown = next(d for u in listed for d in u["devices"] if d["devEui"] == device.dev_eui)
    assert "327.67" in shown["probeFault"]

    assert post(_frame(device.dev_eui, {"TempC_DS": 4.5, "TempC_SHT": 22.6}, model=LHT65)).json()["status"] == "stored"
    device.refresh_from_db()
    assert (device.probe_fault, device.probe_fault_since) == ("", None)


def test_a_fault_and_its_end_are_told_to_dashboards(site, post, subscribe):
    received = subscribe(site.org.id)
    device = site.devices[0]
    post(_frame(device.dev_eui, {"TempC_DS": 327.67, "TempC_SHT": 22.6}, model=LHT65))
    post(_frame(device.dev_eui, {"TempC_DS": 4.0, "TempC_SHT": 22.6}, model=LHT65))
    changes = [e for m in received(2) for e in m["events"] if e["type"] == "deviceStatusChange"]
    assert [bool(e["data"]["probeFault"]) for e in changes] == [True, False]


def test_the_override_comes_first_and_reads_any_path_in_its_unit(site, post):
    device = site.devices[0]
    Device.objects.filter(id=device.id).update(temperature_path="probes[1].t", temperature_unit="F")
    payload = {"temperature": 20.0, "probes": [{"t": 70.0}, {"t": 41.0}]}
    body = post(_frame(device.dev_eui, payload, model=LHT65)).json()
    assert (body["status"], body["source"]) == ("stored", "override")
    assert _temperatures(device) == [5.0]


def test_values_are_read_from_numbers_numeric_strings_and_value_unit_objects(site, post):
    device = site.devices[0]
    for payload, expected in [
        ({"temperature": "4.1"}, 4.1),
        ({"Temperature": "39.2 °F"}, 4.0),
        ({"temp": {"value": 277.15, "unit": "K"}}, 4.0),
        ({"temperature_f": "41"}, 5.0),
    ]:
        TemperatureReading.objects.all().delete()
        body = post(_frame(device.dev_eui, payload)).json()
        assert body["status"] == "stored", (payload, body)
        assert _temperatures(device) == [pytest.approx(expected, abs=1e-3)], payload


def test_a_value_whose_own_unit_contradicts_its_key_stores_nothing(site, post):
    body = post(_frame(site.devices[0].dev_eui, {"temperature_f": "5 °C"})).json()
    assert body["status"] == "unmapped" and "says C" in body["reason"]


def test_normalized_payload_agreeing_with_the_catalogue_is_stored_and_disagreeing_is_kept(site, post):
    device = site.devices[0]
    agree = post(_frame(device.dev_eui, {"TempC_DS": -18.0, "TempC_SHT": 21.0}, model=LHT65,
                        normalized=[{"air": {"temperature": -18.0}}])).json()  # fmt: skip
    assert (agree["status"], agree["source"]) == ("stored", "normalized")
    disagree = post(_frame(device.dev_eui, {"TempC_DS": -18.0, "TempC_SHT": 21.0}, model=LHT65,
                           normalized=[{"air": {"temperature": 21.0}}])).json()  # fmt: skip
    assert disagree["status"] == "unmapped" and "normalized_payload says 21" in disagree["reason"]
    assert KeptUplink.objects.get().reason == disagree["reason"]


def test_normalized_payload_alone_is_read_for_a_model_not_in_the_catalogue(site, post):
    measurements = [{"air": {"temperature": 3.5, "relativeHumidity": 40.0}}]
    body = post(_frame(site.devices[0].dev_eui, {"raw": 1}, model=("acme", "x1"), normalized=measurements)).json()
    assert (body["status"], body["source"]) == ("stored", "normalized")
    assert TemperatureReading.objects.get().humidity == 40.0


def test_a_two_probe_sensor_waits_for_staff_to_choose_the_channel(site, post):
    device = site.devices[0]
    frame = _frame(
        device.dev_eui, {"temperature_chn1": -20.0, "temperature_chn2": 4.0}, model=("milesight-iot", "ts30x")
    )
    first = post(frame).json()
    assert first["status"] == "unmapped" and "choose one" in first["reason"]
    Device.objects.filter(id=device.id).update(temperature_path="temperature_chn2")
    frame["uplink_message"]["f_cnt"] += 1
    assert post(frame).json()["source"] == "override:milesight-iot/ts30x"
    assert _temperatures(device) == [4.0]


def test_a_frame_of_several_readings_stores_each_once_and_only_the_newest_moves_the_unit(site, post, subscribe):
    device, unit = site.devices[0], site.units[0]
    received = subscribe(site.org.id)
    now = timezone.now().replace(microsecond=0)
    history = [{"timestamp": int((now - minutes(m)).timestamp()), "read_status": "Success",
                "temperature": t} for m, t in ((30, 20.0), (20, 21.0), (10, 5.0))]  # fmt: skip
    frame = _frame(device.dev_eui, {"history": history}, model=("milesight-iot", "ts201"), at=now)
    body = post(frame).json()
    assert (body["status"], body["readings"]) == ("stored", 3)
    unit.refresh_from_db()
    # The two older readings were out of range, the newest is not: no excursion, no alert.
    assert (unit.status, unit.last_temperature, unit.last_reading_at) == (UnitStatus.OK, 5.0, now - minutes(10))
    assert unit.alerts.count() == 0
    types = [e["type"] for e in received(1)[0]["events"]]
    assert types == ["reading", "readingsBackfilled"]
    assert post(frame).json()["status"] == "duplicate"
    assert TemperatureReading.objects.filter(device=device).count() == 3


def test_a_late_backlog_invalidates_the_trend_and_stats_it_changes_and_never_the_state(site, post, redis_client):
    device, unit = site.devices[0], site.units[0]
    post(uplink(device.dev_eui, 4.0))
    for path in ("stats", "units/status", f"units/{unit.id}/trends"):
        assert site.client.get(f"/api/orgs/{site.org.id}/{path}").status_code == 200
    late = timezone.now() - timedelta(hours=2)
    history = [{"timestamp": int(late.timestamp()), "read_status": "Success", "temperature": 30.0}]
    body = post(_frame(device.dev_eui, {"history": history}, model=("milesight-iot", "ts201"))).json()
    assert body["events"] == ["readingsBackfilled"]
    keys = {k.decode() for k in redis_client.keys("dashboard:*")}
    assert f"dashboard:stats:org:{site.org.id}" not in keys
    assert f"dashboard:units:status:org:{site.org.id}" in keys
    unit.refresh_from_db()
    assert (unit.status, unit.last_temperature) == (UnitStatus.OK, 4.0)


def test_a_kept_uplink_is_stored_exactly_once_after_staff_give_its_unit(site, post):
    device = site.devices[0]
    frame = _frame(device.dev_eui, {"msgType": "Laird_Internal_TH", "temperature": 98.6, "humidity": 52.33},
                   model=("laird", "rs1xx-temp-rh-sensor"))  # fmt: skip
    assert post(frame).json()["status"] == "unmapped"
    assert KeptUplink.objects.count() == 1 and _temperatures(device) == []
    call_command("reprocess_uplinks")
    assert KeptUplink.objects.count() == 1 and _temperatures(device) == []  # still unreadable: kept

    Device.objects.filter(id=device.id).update(temperature_path="temperature", temperature_unit="F")
    call_command("reprocess_uplinks")
    call_command("reprocess_uplinks")
    assert _temperatures(device) == [pytest.approx(37.0, abs=1e-3)]
    assert KeptUplink.objects.count() == 0
    assert TemperatureReading.objects.get().recorded_at == device.__class__.objects.get(id=device.id).last_seen_at


def test_an_unclaimed_device_registered_later_gets_its_kept_readings(site, post):
    post(uplink("AAAABBBBCCCCDDDD", 3.5))
    assert UnclaimedDevice.objects.filter(dev_eui="AAAABBBBCCCCDDDD").exists()
    device = factories.device(site.units[1], dev_eui="AAAABBBBCCCCDDDD")
    call_command("reprocess_uplinks", "--dev-eui", "aaaabbbbccccdddd")
    assert _temperatures(device) == [3.5]
    assert KeptUplink.objects.count() == 0


def test_kept_uplinks_are_pruned_by_age_and_bounded_per_organization(site, settings):
    from realtime.uplinks import kept_prune

    settings.KEPT_UPLINK_RETENTION_DAYS, settings.KEPT_UPLINK_MAX_PER_ORG = 7, 3
    now = timezone.now()
    for age in (0, 1, 2, 3, 4, 10):
        KeptUplink.objects.create(organization=site.org, dev_eui="AAAABBBBCCCCDDDD", outcome="unmapped",
                                  reason="r", received_at=now - timedelta(days=age), body={})  # fmt: skip
    KeptUplink.objects.create(organization=site.other_org, dev_eui="AAAABBBBCCCCDDDD", outcome="unmapped",
                              reason="r", received_at=now, body={})  # fmt: skip
    assert kept_prune(now=now) == 3
    ages = sorted((now - k.received_at).days for k in KeptUplink.objects.filter(organization=site.org))
    assert ages == [0, 1, 2]
    assert KeptUplink.objects.filter(organization=site.other_org).count() == 1


def test_every_outcome_is_counted(site, post):
    before = {o: metric("dashboard_ingest_total", outcome=o) for o in ("stored", "unclaimed", "ignored", "unmapped")}
    device = site.devices[0]
    post(uplink(device.dev_eui, 4.0))
    post(uplink("AAAABBBBCCCCEEEE", 4.0))
    post(_frame(device.dev_eui, {"battery_v": 3.1}))
    post(_frame(device.dev_eui, None))
    after = {o: metric("dashboard_ingest_total", outcome=o) for o in before}
    assert {o: after[o] - before[o] for o in before} == dict.fromkeys(before, 1.0)


def test_a_join_accept_sent_to_the_webhook_is_answered_2xx_and_stored_nowhere(site, post):
    body = {"end_device_ids": {"device_id": "x", "dev_eui": site.devices[0].dev_eui}, "join_accept": {}}
    answer = post(body)
    assert answer.status_code == 200 and answer.json()["status"] == "ignored"
    assert "join_accept" in answer.json()["reason"]
    assert TemperatureReading.objects.count() == 0 and KeptUplink.objects.count() == 0


def test_a_battery_without_a_unit_is_not_stored_in_either_column(site, post):
    device = site.devices[0]
    post(_frame(device.dev_eui, {"temperature": 4.0, "battery": 87}))
    post(_frame(device.dev_eui, {"temperature": 4.0, "battery": "3.4 V", "f": 1}))
    readings = list(TemperatureReading.objects.order_by("id").values_list("battery_volts", "battery_percent"))
    assert readings == [(None, None), (3.4, None)]


def test_a_payload_with_nan_after_json_parsing_cannot_reach_the_database(site, post):
    raw = json.dumps(uplink(site.devices[0].dev_eui, 4.25)).replace('"temperature": 4.25', '"temperature": Infinity')
    raw = raw.encode()
    assert post(None, raw=raw).status_code == 400
