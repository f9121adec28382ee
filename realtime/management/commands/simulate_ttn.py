"""Post realistic TTN v3 uplinks for the demo organizations to the webhook, so the demo moves.

Each device follows a slow random walk around its unit's set point; now and then a unit goes out
of range for a few minutes (door left open, compressor fault), and now and then a device goes
quiet for a while (dead battery, bad coverage) so the sweep marks it offline.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from dashboard_project.shutdown import stop_requested_event
from stats.models import Device


@dataclass
class SimulatedDevice:
    dev_eui: str
    secret: str
    low: float
    high: float
    temperature: float
    f_cnt: int = 0
    hot_until: float = 0.0
    silent_until: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    def next_reading(self, now: float, excursion_probability: float) -> float:
        centre = (self.low + self.high) / 2
        if self.hot_until <= now and self.rng.random() < excursion_probability:
            self.hot_until = now + self.rng.uniform(60, 300)
        target = self.high + 3 if self.hot_until > now else centre
        self.temperature += (target - self.temperature) * 0.3 + self.rng.uniform(-0.2, 0.2)
        return round(self.temperature, 2)


# Decoded payloads shaped as real models' decoders write them (their Device Repository examples),
# so the demo shows the catalogue at work: a probe beside a housing sensor, a vendor's own key,
# and the generic keys. Each device keeps one model.
MODELS = [
    (("dragino", "lht65"), lambda t: {"TempC_DS": t, "TempC_SHT": 21.8, "Hum_SHT": 48.2, "BatV": 3.05}),
    (("elsys", "elt-2"), lambda t: {"externalTemperature": t, "temperature": 21.5, "humidity": 41, "vdd": 3610}),
    (("netvox", "r718a"), lambda t: {"Temp": t, "Humi": 45.5, "Volt": 3.6}),
    (("milesight-iot", "em300-th"), lambda t: {"temperature": t, "humidity": 52.5, "battery": 92}),
    (None, lambda t: {"temperature": t, "battery_v": 3.6, "humidity": 55}),
]
PROBE_FAULT_PROBABILITY = 0.002  # now and then a Dragino's probe reads 327.67: "no probe"


def uplink_body(device: SimulatedDevice, temperature: float) -> dict:
    stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    ids, payload = MODELS[int(device.dev_eui, 16) % len(MODELS)]
    if ids == ("dragino", "lht65") and device.rng.random() < PROBE_FAULT_PROBABILITY:
        temperature = 327.67
    message: dict = {
        "decoded_payload": payload(temperature),
        "rx_metadata": [{"gateway_ids": {"gateway_id": "demo-gw"}, "rssi": -70 - device.rng.randint(0, 40)}],
        "received_at": stamp,
    }
    if ids:
        message["version_ids"] = {"brand_id": ids[0], "model_id": ids[1]}
    if device.f_cnt:  # The Things Stack omits zero values: the first uplink has no f_cnt.
        message["f_cnt"] = device.f_cnt
    return {
        "end_device_ids": {"device_id": device.dev_eui.lower(), "dev_eui": device.dev_eui},
        "received_at": stamp,
        "uplink_message": message,
    }


class Command(BaseCommand):
    help = "Post simulated TTN uplinks for the demo organizations to the running server's webhook."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's base URL")
        parser.add_argument("--rate", type=float, default=2.0, help="uplinks per second, all devices together")
        parser.add_argument("--excursion-probability", type=float, default=0.01, help="per uplink")
        parser.add_argument("--dropout-probability", type=float, default=0.002, help="per uplink")
        parser.add_argument("--count", type=int, default=0, help="stop after this many uplinks (0: run forever)")
        parser.add_argument("--orgs", default="demo-", help="slug prefix of the organizations to simulate")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args: object, **opts: object) -> None:
        if opts["rate"] <= 0:
            raise CommandError("--rate must be positive")
        rng = random.Random(opts["seed"])
        devices = [
            SimulatedDevice(
                d.dev_eui,
                d.organization.webhook_secret,
                d.unit.temp_min,
                d.unit.temp_max,
                (d.unit.temp_min + d.unit.temp_max) / 2,
                rng=random.Random(rng.random()),
            )
            for d in Device.objects.filter(organization__slug__startswith=opts["orgs"], unit__isnull=False)
            .select_related("organization", "unit")
            .order_by("dev_eui")
        ]
        if not devices:
            raise CommandError(f"no devices in organizations whose slug starts with {opts['orgs']!r}; run seed_demo")
        self.stdout.write(f"simulating {len(devices)} devices at {opts['rate']:g} uplinks/s -> {opts['url']}")
        with stop_requested_event() as stop:  # an uplink in flight gets its answer first
            _wait_for_server(opts["url"], stop)
            sent, failures = self._simulate(devices, rng, stop, opts)
        self.stdout.write(f"sent {sent} uplinks, {failures} failed")

    def _simulate(
        self, devices: list[SimulatedDevice], rng: random.Random, stop: threading.Event, opts: dict
    ) -> tuple[int, int]:
        interval, sent, failures = 1 / opts["rate"], 0, 0
        while not stop.is_set() and (not opts["count"] or sent < opts["count"]):
            started = time.monotonic()
            device = rng.choice(devices)
            if device.silent_until > started:
                stop.wait(interval)
                continue
            if rng.random() < opts["dropout_probability"]:
                device.silent_until = started + rng.uniform(600, 1500)
                continue
            status = self._post(opts["url"], device, device.next_reading(started, opts["excursion_probability"]))
            device.f_cnt += 1
            sent += 1
            failures += status != 200
            if status != 200:
                self.stderr.write(f"uplink for {device.dev_eui}: HTTP {status}")
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
        return sent, failures

    def _post(self, base_url: str, device: SimulatedDevice, temperature: float) -> int:
        request = urllib.request.Request(
            f"{base_url.rstrip('/')}/api/webhooks/ttn",
            data=json.dumps(uplink_body(device, temperature)).encode(),
            headers={"Content-Type": "application/json", "X-Webhook-Secret": device.secret},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0


def _wait_for_server(base_url: str, stop: threading.Event) -> None:
    """Post nothing before the server accepts connections (`make run` starts both together)."""
    url = urllib.parse.urlsplit(base_url)
    address = (url.hostname or "127.0.0.1", url.port or (443 if url.scheme == "https" else 80))
    while not stop.is_set():
        try:
            socket.create_connection(address, timeout=1).close()
            return
        except OSError:
            stop.wait(0.2)
