"""Real sensors' payloads through the real webhook: each lands, and lands right.

`tests/realtime/corpus/<brand>/<model>.json` holds decoded payloads copied verbatim from The Things
Network's Device Repository (TheThingsNetwork/lorawan-devices, each codec's
`uplinkDecoder.examples[].output.data`, with the file's path and commit), and the CayenneLPP
formatter's output from The Things Stack's own test. `expect` is ours: what a cold-chain unit must
get from the frame (the product temperature in °C, the probe where there is one), and why.

Each example is posted in a full TTN v3 envelope with its `version_ids`. Examples whose readings
carry their own time are posted as if received a minute after the newest of them (the clock of the
test process is set there: those times are years old, and readings stamped more than a week before
their reception are not stored).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from realtime.ttn import catalogue
from stats.models import Device, KeptUplink, TemperatureReading
from tests import factories

pytestmark = pytest.mark.django_db

CORPUS = Path(__file__).with_name("corpus")


def _examples() -> list[tuple[str, dict, dict]]:
    found = []
    for path in sorted(CORPUS.glob("*/*.json")):
        model = json.loads(path.read_text())
        for index, example in enumerate(model["examples"]):
            found.append((f"{path.parent.name}/{path.stem}#{index}", model, example))
    return found


EXAMPLES = _examples()


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def envelope(model: dict, example: dict, dev_eui: str, at: datetime, f_cnt: int) -> dict:
    """A TTN v3 uplink message as The Things Stack's webhooks send it (empty fields omitted)."""
    message: dict = {
        "session_key_id": "AYpR3nNUnpYu5Oj7vJ2L2w==",
        "f_port": example["fPort"],
        "f_cnt": f_cnt,
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": "cold-store-gw", "eui": "B827EBFFFE8B4E6A"},
                "time": _iso(at),
                "timestamp": 2823478156,
                "rssi": -87,
                "channel_rssi": -87,
                "snr": 9.25,
                "uplink_token": "ChsKGQoNY29sZC1zdG9yZS1ndxII",
                "received_at": _iso(at),
            }
        ],
        "settings": {
            "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7, "coding_rate": "4/5"}},
            "frequency": "868100000",
        },
        "received_at": _iso(at),
        "consumed_airtime": "0.061696s",
        "network_ids": {"net_id": "000013", "tenant_id": "ttn", "cluster_id": "eu1"},
    }
    if "bytes" in example:
        message["frm_payload"] = base64.b64encode(bytes(example["bytes"])).decode()
    if example.get("data") is not None:
        message["decoded_payload"] = example["data"]
    if example.get("normalized") is not None:
        message["normalized_payload"] = example["normalized"]
    if model.get("brand_id"):
        message["version_ids"] = {"brand_id": model["brand_id"], "model_id": model["model_id"], "band_id": "EU_863_870"}
    return {
        "end_device_ids": {
            "device_id": f"eui-{dev_eui.lower()}",
            "application_ids": {"application_id": "cold-chain"},
            "dev_eui": dev_eui,
            "join_eui": "0000000000000000",
            "dev_addr": "260B1F2A",
        },
        "correlation_ids": ["as:up:01HZ9X0RX8P2S1QKJ6WZ3M4T7A"],
        "received_at": _iso(at),
        "uplink_message": message,
    }


@pytest.fixture
def at_time(monkeypatch):
    """Set the clock the server code reads (`django.utils.timezone.now`) to `at`."""

    def travel(at: datetime) -> None:
        monkeypatch.setattr(timezone, "now", lambda: at)

    return travel


def _post(org, body: dict):
    return Client().post(
        "/api/webhooks/ttn",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_X_WEBHOOK_SECRET=org.webhook_secret,
    )


@pytest.mark.parametrize("name,model,example", EXAMPLES, ids=[name for name, _, _ in EXAMPLES])
def test_a_real_payload_stores_the_product_temperature_or_says_why_not(name, model, example, at_time):
    expect = example["expect"]
    times = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in expect.get("times", [])]
    at = max(times) + timedelta(minutes=1) if times else timezone.now()
    at_time(at)
    org = factories.organization()
    unit = factories.unit(org, temp_min=-60, temp_max=60)
    device = factories.device(unit)
    if "override" in expect:
        Device.objects.filter(id=device.id).update(
            temperature_path=expect["override"]["path"], temperature_unit=expect["override"]["unit"]
        )
    body = envelope(model, example, device.dev_eui, at, f_cnt=7)

    response = _post(org, body)

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["status"] == expect["outcome"], (answer, expect["why"])
    stored = list(TemperatureReading.objects.filter(device=device).order_by("recorded_at", "id"))
    assert [r.temperature for r in stored] == pytest.approx(expect["temperatures"], abs=1e-3), answer
    device.refresh_from_db()
    if expect["outcome"] == "stored":
        assert answer["readings"] == len(stored)
        assert {r.source for r in stored} == {answer["source"]} and answer["source"]
        assert device.last_source == answer["source"] and not device.probe_fault
        if times:
            assert [r.recorded_at for r in stored] == times
        assert _post(org, body).json()["status"] == "duplicate"  # TTN's retry stores nothing twice
        assert TemperatureReading.objects.filter(device=device).count() == len(stored)
    elif expect["outcome"] == "fault":
        assert device.probe_fault, answer
    kept = KeptUplink.objects.filter(dev_eui=device.dev_eui)
    assert [k.body for k in kept] == ([body] if expect["outcome"] == "unmapped" else [])
    assert device.last_payload.get("decoded_payload") == example.get("data")


def test_the_corpus_covers_enough_real_models_and_every_catalogued_model_has_an_example():
    models = {(m["brand_id"], m["model_id"]) for _, m, _ in EXAMPLES}
    vendors = {brand for brand, _ in models if brand}
    assert len(EXAMPLES) >= 35 and len(models) >= 25 and len(vendors) >= 10, (len(EXAMPLES), len(models), vendors)
    assert set(catalogue.models()) <= models, set(catalogue.models()) - models
    for _, model, _ in EXAMPLES:
        source = model.get("codec") or model.get("source")
        assert source["path"] and len(source["commit"]) == 40, model["name"]
