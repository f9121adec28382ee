"""TTN v3 uplink -> reading -> device and unit state -> alerts -> events (DESIGN sections 3 and 7).

`parse_uplink` validates the JSON without touching the database; `ingest_uplink` applies it in one
transaction (nothing half-written) and emits the resulting events after commit.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from prometheus_client import Counter

from stats.models import (
    Alert,
    AlertStatus,
    Device,
    Organization,
    TemperatureReading,
    Unit,
    UnitStatus,
    webhook_secret_digest,
)

from . import broadcast, events
from .events import Event, EventType

INGEST = Counter("dashboard_ingest_total", "TTN uplinks by outcome", ["outcome"])

TEMPERATURE_KEYS_C = ("temperature", "temp", "temperature_c")
TEMPERATURE_KEY_F = "temperature_f"
BATTERY_KEYS = ("battery", "battery_v", "batt")
HUMIDITY_KEYS = ("humidity", "hum")
# Physically plausible for a cold chain sensor; anything outside is a decoder bug, not a reading.
TEMPERATURE_RANGE_C = (-100.0, 100.0)
# Readings stamped too far from now are rejected: clocks that far off make the state machine lie.
MAX_FUTURE = timedelta(minutes=5)
MAX_PAST = timedelta(days=7)
HYSTERESIS_C = 0.5
DEV_EUI = re.compile(r"^[0-9A-Fa-f]{16}$")
_FRACTION = re.compile(r"(\.\d{6})\d+")


class IngestError(Exception):
    def __init__(self, status: int, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


@dataclass(frozen=True)
class Uplink:
    dev_eui: str
    uplink_id: str
    temperature: float
    recorded_at: datetime
    received_at: datetime
    battery: float | None
    humidity: float | None
    rssi: int | None


@dataclass(frozen=True)
class IngestResult:
    duplicate: bool
    reading_id: int | None
    unit_id: str
    unit_status: str
    events: list[str]


def _number(value: object) -> float | None:
    """A finite JSON number (bools are not numbers here), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # a JSON integer beyond any float
        return None
    return number if math.isfinite(number) else None


def _timestamp(raw: object, field: str) -> datetime:
    if not isinstance(raw, str) or len(raw) > 64:
        raise IngestError(422, f"{field} must be an ISO 8601 timestamp", field=field)
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", raw.replace("Z", "+00:00")))
    except ValueError:
        raise IngestError(422, f"{field} must be an ISO 8601 timestamp", field=field) from None
    if parsed.tzinfo is None:
        raise IngestError(422, f"{field} must carry a timezone", field=field)
    return parsed


def _optional_number(payload: dict, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        if key in payload:
            return _number(payload[key])
    return None


def parse_uplink(body: bytes, *, now: datetime | None = None) -> Uplink:
    now = now or timezone.now()
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # also UnicodeDecodeError and integers over 4300 digits
        raise IngestError(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise IngestError(400, "body must be a JSON object")
    ids = data.get("end_device_ids")
    dev_eui = ids.get("dev_eui") if isinstance(ids, dict) else None
    if not isinstance(dev_eui, str) or not DEV_EUI.match(dev_eui):
        raise IngestError(422, "end_device_ids.dev_eui must be 16 hex digits", field="end_device_ids.dev_eui")
    message = data.get("uplink_message")
    if not isinstance(message, dict):
        raise IngestError(422, "uplink_message is missing", field="uplink_message")
    payload = message.get("decoded_payload")
    if not isinstance(payload, dict):
        raise IngestError(422, "uplink_message.decoded_payload is missing", field="uplink_message.decoded_payload")

    temperature = None
    for key in TEMPERATURE_KEYS_C:
        if key in payload:
            temperature = _number(payload[key])
            field = key
            break
    else:
        if TEMPERATURE_KEY_F in payload:
            fahrenheit = _number(payload[TEMPERATURE_KEY_F])
            temperature = None if fahrenheit is None else (fahrenheit - 32) * 5 / 9
            field = TEMPERATURE_KEY_F
        else:
            raise IngestError(
                422,
                "decoded_payload has no temperature (expected one of temperature, temp, temperature_c, temperature_f)",
                field="uplink_message.decoded_payload.temperature",
            )
    if temperature is None:
        raise IngestError(422, f"decoded_payload.{field} must be a finite number", field=f"decoded_payload.{field}")
    low, high = TEMPERATURE_RANGE_C
    if not low <= temperature <= high:
        raise IngestError(422, f"decoded_payload.{field} is outside {low}..{high} °C", field=f"decoded_payload.{field}")

    raw_time = message.get("received_at", data.get("received_at"))
    recorded_at = now if raw_time is None else _timestamp(raw_time, "uplink_message.received_at")
    if recorded_at > now + MAX_FUTURE or recorded_at < now - MAX_PAST:
        raise IngestError(422, "received_at is too far from the server's clock", field="uplink_message.received_at")

    f_cnt = message.get("f_cnt", 0)  # The Things Stack omits zero values: the first uplink has none.
    if isinstance(f_cnt, bool) or not isinstance(f_cnt, int) or not 0 <= f_cnt < 2**32:
        raise IngestError(422, "uplink_message.f_cnt must be a 32-bit frame counter", field="uplink_message.f_cnt")

    rssi_values = []
    metadata = message.get("rx_metadata")
    if isinstance(metadata, list):
        for gateway in metadata[:16]:
            value = _number(gateway.get("rssi")) if isinstance(gateway, dict) else None
            if value is not None and -200 <= value <= 50:
                rssi_values.append(int(value))
    battery = _optional_number(payload, BATTERY_KEYS)
    humidity = _optional_number(payload, HUMIDITY_KEYS)
    return Uplink(
        dev_eui=dev_eui.upper(),
        uplink_id=f"{dev_eui.upper()}:{f_cnt}:{recorded_at.isoformat()}",
        temperature=round(temperature, 3),
        recorded_at=recorded_at,
        received_at=now,
        battery=battery if battery is not None and 0 <= battery <= 100 else None,
        humidity=humidity if humidity is not None and 0 <= humidity <= 100 else None,
        rssi=max(rssi_values) if rssi_values else None,
    )


def organization_for_secret(secret: str) -> Organization | None:
    """The organization whose webhook secret this is (constant-time final comparison)."""
    org = Organization.objects.filter(webhook_secret_sha256=webhook_secret_digest(secret)).first()
    if org is None or not constant_time_compare(secret, org.webhook_secret):
        return None
    return org


def ingest_uplink(*, org: Organization, uplink: Uplink) -> IngestResult:
    try:
        with transaction.atomic():
            return _apply(org, uplink)
    except IntegrityError:
        # Two deliveries of one uplink raced; the other one stored it.
        INGEST.labels("duplicate").inc()
        unit = Unit.objects.get(devices__dev_eui=uplink.dev_eui)
        return IngestResult(True, None, str(unit.id), unit.status, [])


def _apply(org: Organization, uplink: Uplink) -> IngestResult:
    # One query finds the device and locks it and its unit: uplinks of one unit apply one at a
    # time, in order. A refusal raises inside the transaction, which has written nothing.
    device = (
        Device.objects.select_related("unit")
        .select_for_update()
        .filter(dev_eui=uplink.dev_eui, organization_id=org.id, unit__organization_id=org.id)
        .first()
    )
    if device is None:
        raise _refusal(org, uplink.dev_eui)
    unit = device.unit
    existing = TemperatureReading.objects.filter(uplink_id=uplink.uplink_id).values_list("id", flat=True).first()
    if existing is not None:
        INGEST.labels("duplicate").inc()
        return IngestResult(True, existing, str(unit.id), unit.status, [])
    reading = TemperatureReading.objects.create(
        unit=unit,
        device=device,
        organization_id=unit.organization_id,
        temperature=uplink.temperature,
        humidity=uplink.humidity,
        battery=uplink.battery,
        rssi=uplink.rssi,
        recorded_at=uplink.recorded_at,
        received_at=uplink.received_at,
        uplink_id=uplink.uplink_id,
    )
    emitted: list[Event] = [events.reading(unit, uplink.temperature, uplink.recorded_at)]

    was_online = device.online
    device.online = True
    device.last_seen_at = max(filter(None, [device.last_seen_at, uplink.received_at]))
    device.battery = uplink.battery if uplink.battery is not None else device.battery
    device.rssi = uplink.rssi if uplink.rssi is not None else device.rssi
    device.save(update_fields=["online", "last_seen_at", "battery", "rssi"])
    if not was_online:
        emitted.append(events.device_status_change(device))

    # A late reading (older than the unit's latest) is stored but does not drive the state.
    if unit.last_reading_at is None or uplink.recorded_at >= unit.last_reading_at:
        emitted += apply_reading_to_unit(unit, uplink.temperature, uplink.recorded_at)
    broadcast.emit_on_commit(emitted)
    INGEST.labels("stored").inc()
    return IngestResult(False, reading.id, str(unit.id), unit.status, [str(e.type) for e in emitted])


def _refusal(org: Organization, dev_eui: str) -> IngestError:
    """Why the device cannot report for `org` (a second query, on refusals only)."""
    device = (
        Device.objects.filter(dev_eui=dev_eui)
        .select_related("unit")
        .only("organization_id", "unit__organization_id")
        .first()
    )
    if device is None:
        return IngestError(404, "unknown device", devEui=dev_eui)
    if device.organization_id != org.id:
        return IngestError(403, "device belongs to another organization", devEui=dev_eui)
    if device.unit is None:
        return IngestError(422, "device is not assigned to a unit", devEui=dev_eui)
    return IngestError(422, "device is assigned to another organization's unit", devEui=dev_eui)


def _unresolved_alert(unit: Unit) -> Alert | None:
    return (
        Alert.objects.select_for_update()
        .filter(unit=unit, status__in=[AlertStatus.ACTIVE, AlertStatus.ACKNOWLEDGED, AlertStatus.ESCALATED])
        .order_by("-triggered_at")
        .first()
    )


def apply_reading_to_unit(unit: Unit, temperature: float, at: datetime) -> list[Event]:
    """The unit state machine of DESIGN section 3. Saves the unit and alerts; returns the events.

    ok/offline/restoring --out of range--> excursion (alert created)
    excursion --still out `ALARM_CONFIRM_DELAY_SECONDS` after it began--> alarm_active (alert escalated)
    excursion/alarm_active --inside with 0.5 °C hysteresis--> restoring (alert resolved)
    restoring --in range for `RESTORE_STABLE_SECONDS`--> ok;  offline --in range--> ok
    """
    previous, previous_side = unit.status, _side(unit, unit.last_temperature)
    emitted: list[Event] = []
    too_hot, too_cold = temperature > unit.temp_max, temperature < unit.temp_min
    out_of_range = too_hot or too_cold
    well_inside = unit.temp_min + HYSTERESIS_C <= temperature <= unit.temp_max - HYSTERESIS_C
    confirm = timedelta(seconds=settings.ALARM_CONFIRM_DELAY_SECONDS)
    stable = timedelta(seconds=settings.RESTORE_STABLE_SECONDS)

    if out_of_range:
        alert = _unresolved_alert(unit)
        if unit.status not in (UnitStatus.EXCURSION, UnitStatus.ALARM_ACTIVE):
            unit.status = UnitStatus.EXCURSION
            unit.excursion_started_at = at
            unit.restoring_since = None
        if alert is None:
            alert = Alert.objects.create(
                organization_id=unit.organization_id,
                unit=unit,
                severity=Alert.Severity.WARNING,
                trigger_temperature=temperature,
                threshold_violated=Alert.Threshold.MAX if too_hot else Alert.Threshold.MIN,
                triggered_at=at,
            )
            emitted.append(events.alert_event(EventType.ALERT_CREATED, alert))
        if unit.status == UnitStatus.EXCURSION and at - unit.excursion_started_at >= confirm:
            unit.status = UnitStatus.ALARM_ACTIVE
            alert.status = AlertStatus.ESCALATED
            alert.severity = Alert.Severity.CRITICAL
            alert.save(update_fields=["status", "severity"])
            emitted.append(events.alert_event(EventType.ALERT_ESCALATED, alert))
    elif unit.status in (UnitStatus.EXCURSION, UnitStatus.ALARM_ACTIVE):
        if well_inside:
            unit.status = UnitStatus.RESTORING
            unit.restoring_since = at
            unit.excursion_started_at = None
            alert = _unresolved_alert(unit)
            if alert is not None:
                alert.status = AlertStatus.RESOLVED
                alert.resolved_at = at
                alert.save(update_fields=["status", "resolved_at"])
                emitted.append(events.alert_event(EventType.ALERT_RESOLVED, alert))
    elif unit.status == UnitStatus.RESTORING:
        if unit.restoring_since is None or at - unit.restoring_since >= stable:
            unit.status = UnitStatus.OK
            unit.restoring_since = None
    elif unit.status == UnitStatus.OFFLINE:
        unit.status = UnitStatus.OK

    unit.last_temperature = temperature
    unit.last_reading_at = at
    unit.save(
        update_fields=["status", "excursion_started_at", "restoring_since", "last_temperature", "last_reading_at"]
    )
    # too_hot / too_cold counts follow the side of an out-of-range unit, not only its status.
    if unit.status != previous or _side(unit, temperature) != previous_side:
        emitted.append(events.unit_update(unit, previous))
    return emitted


def _side(unit: Unit, temperature: float | None) -> str | None:
    if unit.status not in (UnitStatus.EXCURSION, UnitStatus.ALARM_ACTIVE) or temperature is None:
        return None
    if temperature > unit.temp_max:
        return "hot"
    return "cold" if temperature < unit.temp_min else None
