"""From an uplink to the readings it carries: which temperature is the product's, in °C.

Sources, the first that is certain wins:
1. the device's override, set by staff (a custom decoder, or which probe of a multi-probe sensor);
2. `normalized_payload` (The Things Stack's schema: `air.temperature` in °C, optional `time`),
   checked against the catalogue entry when there is one (they must agree);
3. the device-model catalogue, keyed by `version_ids` (the probe over the housing, units, values
   that mean "no reading", several readings per frame);
4. the generic keys (`temperature`, `temp`, `temperature_c` in °C, `temperature_f` in °F, any case),
   only when nothing else in the frame looks like another temperature.
The override comes first because it is a person's decision about this one device; every other
source only describes the model. Nothing is guessed: a unit or a channel that is not certain, or
sources that disagree, give `unmapped` (kept for later) with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .catalogue import DeviceModel
from .envelope import MAX_FUTURE, MAX_PAST, Envelope
from .paths import find
from .sources import Found, from_generic, from_model, from_normalized, one, temperature_like
from .values import finite, in_unit, quantity

STORED, IGNORED, UNMAPPED, FAULT = "stored", "ignored", "unmapped", "fault"
HUMIDITY_KEYS = ("humidity", "hum", "relativehumidity", "relative_humidity")
CAYENNE_HUMIDITY = re.compile(r"relative_humidity_\d{1,3}")
BATTERY_VOLT_KEYS = ("battery_v", "batv", "battery_voltage", "batteryvoltage", "vbat")
BATTERY_PERCENT_KEYS = ("battery_percent", "battery_pct", "battery_level", "batterylevel")
AGREE_WITHIN_C = 0.05  # normalized and catalogue values closer than this are the same reading


@dataclass(frozen=True)
class Override:
    path: str
    unit: str | None  # C, F, K; None: the value carries its unit


@dataclass(frozen=True)
class Reading:
    temperature: float  # °C
    recorded_at: datetime
    uplink_id: str


@dataclass(frozen=True)
class Extraction:
    outcome: str
    source: str = ""
    readings: list[Reading] = field(default_factory=list)
    reason: str = ""
    humidity: float | None = None
    battery_percent: float | None = None
    battery_volts: float | None = None


def _extras(data: dict, normalized: list[dict] | None, model: DeviceModel | None) -> dict[str, float | None]:
    humidity = battery_percent = battery_volts = None
    lowered = {key.lower(): value for key, value in data.items()}
    if model is not None and model.humidity:
        humidity = _single_number(data, model.humidity)
    else:
        humidity = next((in_unit(lowered[k], "%", {"%": 1.0}) for k in HUMIDITY_KEYS if k in lowered), None)
        channels = [key for key in data if CAYENNE_HUMIDITY.fullmatch(key)]
        if humidity is None and len(channels) == 1:
            humidity = in_unit(data[channels[0]], "%", {"%": 1.0})
    if humidity is None and normalized:
        air = normalized[-1].get("air")
        humidity = finite(air.get("relativeHumidity")) if isinstance(air, dict) else None
    if model is not None and model.battery:
        value = _single_number(data, model.battery)
        if value is not None:
            value *= model.battery_factor
            if model.battery_unit == "V":
                battery_volts = value
            else:
                battery_percent = value
    else:
        volts = {"V": 1.0, "mV": 0.001}
        battery_volts = next((in_unit(lowered[k], "V", volts) for k in BATTERY_VOLT_KEYS if k in lowered), None)
        battery_percent = next(
            (in_unit(lowered[k], "%", {"%": 1.0}) for k in BATTERY_PERCENT_KEYS if k in lowered), None
        )
        if "battery" in lowered and battery_volts is None and battery_percent is None:
            # A bare `battery` says nothing of its unit: only a value that carries one is kept.
            written = quantity(lowered["battery"])
            if written is not None and written.unit in ("V", "mV"):
                battery_volts = written.value * volts[written.unit]
            elif written is not None and written.unit == "%":
                battery_percent = written.value
    return {
        "humidity": humidity if humidity is not None and 0 <= humidity <= 100 else None,
        "battery_percent": battery_percent if battery_percent is not None and 0 <= battery_percent <= 100 else None,
        "battery_volts": battery_volts if battery_volts is not None and 0 < battery_volts <= 20 else None,
    }


def _single_number(data: dict, path: str) -> float | None:
    found = find(data, path)
    if len(found) != 1:
        return None
    number = quantity(found[0])
    return None if number is None else number.value


def _readings(envelope: Envelope, values: list[tuple[float, datetime | None]]) -> tuple[list[Reading], int]:
    """Timestamped readings outside [received - 7 days, received + 5 min] are dropped: a device
    clock that far off (unset, reset to 1970) would put them where they mislead."""
    readings: dict[str, Reading] = {}
    dropped = 0
    for index, (value, at) in enumerate(values):
        if at is None:
            uplink_id = envelope.uplink_id if len(values) == 1 else f"{envelope.uplink_id}#{index}"
            at = envelope.received_at
        elif envelope.received_at - MAX_PAST <= at <= envelope.received_at + MAX_FUTURE:
            uplink_id = f"{envelope.dev_eui}:t:{at.astimezone(UTC).isoformat()}"
        else:
            dropped += 1
            continue
        readings[uplink_id] = Reading(round(value, 3), at, uplink_id)
    return sorted(readings.values(), key=lambda r: r.recorded_at), dropped


def _decide(envelope: Envelope, model: DeviceModel | None, override: Override | None) -> tuple[str, Found]:
    data = envelope.decoded or {}
    if override is not None and model is not None and override.path in model.channels:
        return f"override:{model.key}", from_model(data, model, envelope.received_at, channel=override.path)
    if override is not None:
        found = one(data, override.path, override.unit, model)
        if found.absent and temperature_like(data, set()):
            found = Found(uncertain=f"the override's path {override.path} is not in this frame")
        return "override", found
    catalogued = from_model(data, model, envelope.received_at) if model and envelope.decoded is not None else None
    if envelope.normalized:
        normalized = from_normalized(envelope.normalized)
        if normalized.values and catalogued is not None and catalogued.values:
            newest_n, newest_c = normalized.values[-1][0], catalogued.values[-1][0]
            if abs(newest_n - newest_c) > AGREE_WITHIN_C:
                said = f"normalized_payload says {newest_n:g} °C, the catalogue's path {newest_c:g} °C"
                return "normalized", Found(uncertain=said)
        if catalogued is not None and catalogued.fault:
            return f"catalogue:{model.key}", catalogued
        if normalized.values or normalized.fault:
            return "normalized", normalized
        if normalized.uncertain and (catalogued is None or not catalogued.values):
            return "normalized", normalized
    if catalogued is not None:
        return f"catalogue:{model.key}", catalogued
    if envelope.decoded is None:
        errors = f": {'; '.join(envelope.decode_errors)}" if envelope.decode_errors else ""
        return "", Found(uncertain=f"no decoded_payload (no payload formatter, or it failed){errors}")
    found = from_generic(data)
    if found.uncertain and (envelope.brand_id or envelope.model_id):
        model_id = f"{envelope.brand_id}/{envelope.model_id}"
        found = Found(uncertain=f"model {model_id} is not in the catalogue; {found.uncertain}")
    return "generic", found


def extract(envelope: Envelope, *, model: DeviceModel | None, override: Override | None) -> Extraction:
    """What the uplink carries for its device's unit."""
    if envelope.message_type != "uplink_message":
        return Extraction(IGNORED, reason=f"not an uplink message ({envelope.message_type})")
    extras = _extras(envelope.decoded or {}, envelope.normalized, model)
    source, found = _decide(envelope, model, override)
    if found.fault:
        return Extraction(FAULT, source, reason=found.fault, **extras)
    if found.uncertain:
        return Extraction(UNMAPPED, source, reason=found.uncertain, **extras)
    readings, dropped = _readings(envelope, found.values)
    if not readings:
        reason = f"{dropped} reading(s) stamped too far from the reception time" if dropped else "no temperature"
        return Extraction(UNMAPPED if dropped else IGNORED, source, reason=reason, **extras)
    reason = f"{dropped} reading(s) stamped too far from the reception time were not stored" if dropped else ""
    return Extraction(STORED, source, readings, reason, **extras)
