"""One TTN uplink, applied in one transaction: its readings, its device, its unit's state, and the
events that follow (emitted after commit). What the payload means is `realtime.ttn`'s business.

A well-formed uplink of the secret's organization is never refused: it is `stored`, a `duplicate`,
`ignored` (no temperature in this frame), a probe `fault`, or kept raw for later as `unmapped`
(a model or shape not readable yet), `unassigned` (a device on no unit of this organization) or
`unclaimed` (a device nobody registered). The Things Stack counts every non-2xx answer as a
failure and stops sending to a webhook that fails too often. Only a device of another
organization is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone
from prometheus_client import Counter

from stats import rows, services
from stats.models import Device, KeptUplink, Organization, TemperatureReading, Unit, webhook_secret_digest
from stats.windows import window_start

from . import broadcast, events, unit_state
from .events import Event
from .ttn import Envelope, Extraction, Override, catalogue, extract
from .ttn.extract import FAULT, STORED, UNMAPPED
from .uplinks import keep_uplink, note_unclaimed

INGEST = Counter("dashboard_ingest_total", "TTN uplinks by outcome", ["outcome"])
READINGS_STORED = Counter("dashboard_ingest_readings_total", "Readings stored, by kind of source", ["source"])
PROBE_FAULTS = Counter("dashboard_probe_faults_total", "Uplinks whose probe gave no usable temperature")
OUTCOMES = ("stored", "duplicate", "ignored", "fault", "unmapped", "unassigned", "unclaimed")
for _outcome in OUTCOMES:
    INGEST.labels(_outcome)  # exported at 0 from the start, so rate() and increase() see the first one
for _source in ("override", "normalized", "catalogue", "generic"):
    READINGS_STORED.labels(_source)


class ForeignDevice(Exception):
    """The device is registered to another organization: its uplink is not this one's to store."""


@dataclass(frozen=True)
class IngestResult:
    outcome: str
    reason: str = ""
    source: str = ""
    reading_ids: list[int] = field(default_factory=list)
    unit_id: str | None = None
    unit_status: str | None = None
    events: list[str] = field(default_factory=list)


def organization_for_secret(secret: str) -> Organization | None:
    """The organization whose webhook secret this is, found by the secret's SHA-256 (an index
    that says nothing about the secret; equal digests are equal secrets). Cached: every uplink
    asks, and the answer changes only when a secret is rotated. The organization is returned
    with its id alone: that is all an uplink needs of it."""
    org_id = services.webhook_organization(secret_digest=webhook_secret_digest(secret))
    return None if org_id is None else Organization(id=org_id)


def ingest_uplink(*, org: Organization, envelope: Envelope, keep: bool = True) -> IngestResult:
    """Apply one uplink. `keep=False` (reprocessing a kept uplink) keeps nothing again.
    Raises ForeignDevice; database errors propagate (the webhook answers 503, TTN retries)."""
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                result = _apply(org, envelope, keep)
            break
        except IntegrityError:
            # Two uplinks of one unclaimed device raced to note it first: applied again, this one
            # sees what the other wrote. (Readings do not conflict: `insert_new` skips stored ones.)
            if attempt == 2:
                raise
    INGEST.labels(result.outcome).inc()
    return result


def _locked_device(org: Organization, dev_eui: str) -> Device | None:
    """The device with its unit, both locked, in one query: uplinks of one unit apply one at a
    time, in order. None when it has no unit of this organization (see `_unusual`)."""
    return rows.lock_device_with_unit(org_id=org.id, dev_eui=dev_eui)


def _apply(org: Organization, envelope: Envelope, keep: bool) -> IngestResult:
    if not envelope.dev_eui:
        return IngestResult("ignored", "the device has no DevEUI (registered without one): nothing can claim it")
    device = _locked_device(org, envelope.dev_eui)
    if device is None:
        return _unusual(org, envelope, keep)
    extraction = _extract(device, envelope)
    emitted = _update_device(device, envelope, extraction)
    unit = device.unit
    outcome, reading_ids = extraction.outcome, []
    if outcome == STORED:
        outcome, reading_ids = _store(unit, device, envelope, extraction, emitted)
    elif outcome == UNMAPPED and keep:
        keep_uplink(org, envelope, KeptUplink.Reason.UNMAPPED, extraction.reason)
    broadcast.emit_on_commit(emitted)
    return IngestResult(
        outcome,
        extraction.reason,
        extraction.source,
        reading_ids,
        str(unit.id),
        unit.status,
        [str(event.type) for event in emitted],
    )


def _unusual(org: Organization, envelope: Envelope, keep: bool) -> IngestResult:
    """A device that is unknown, another organization's, or on no unit of this organization."""
    device = Device.objects.select_for_update(of=("self",)).filter(dev_eui=envelope.dev_eui).first()
    if device is None:
        if keep:
            note_unclaimed(org, envelope)
            keep_uplink(org, envelope, KeptUplink.Reason.UNCLAIMED, "no device registered with this DevEUI")
        return IngestResult("unclaimed", "no device registered with this DevEUI: listed for staff to claim")
    if device.organization_id != org.id:
        raise ForeignDevice(envelope.dev_eui)
    extraction = _extract(device, envelope)
    emitted = _update_device(device, envelope, extraction)
    broadcast.emit_on_commit(emitted)
    reason = "the device is assigned to no unit of this organization"
    if extraction.outcome in (STORED, UNMAPPED) and keep:
        keep_uplink(org, envelope, KeptUplink.Reason.UNASSIGNED, reason)
    return IngestResult("unassigned", f"{reason}; kept until it is", extraction.source)


def _extract(device: Device, envelope: Envelope) -> Extraction:
    model = catalogue.lookup(envelope.brand_id or device.brand_id, envelope.model_id or device.model_id)
    override = Override(device.temperature_path, device.temperature_unit or None) if device.temperature_path else None
    return extract(envelope, model=model, override=override)


def _update_device(device: Device, envelope: Envelope, extraction: Extraction) -> list[Event]:
    """The device was heard: seen, signal, battery, model, raw payload, probe fault."""
    was_online, had_fault = device.online, device.probe_fault
    device.online = True
    device.last_seen_at = max(filter(None, [device.last_seen_at, envelope.received_at]))
    device.rssi = envelope.rssi if envelope.rssi is not None else device.rssi
    if extraction.battery_percent is not None:
        device.battery_percent = extraction.battery_percent
    if extraction.battery_volts is not None:
        device.battery_volts = extraction.battery_volts
    if envelope.brand_id and envelope.model_id:
        device.brand_id, device.model_id = envelope.brand_id, envelope.model_id
    message = envelope.raw.get("uplink_message")
    kept = ("f_port", "decoded_payload", "normalized_payload", "version_ids")
    device.last_payload = {key: message[key] for key in kept if key in message} if isinstance(message, dict) else None
    if extraction.outcome == FAULT:
        PROBE_FAULTS.inc()
        device.probe_fault = extraction.reason[:200]
        device.probe_fault_since = device.probe_fault_since if had_fault else envelope.received_at
    elif extraction.outcome == STORED:
        device.probe_fault, device.probe_fault_since = "", None
        device.last_source = extraction.source
    rows.save_fields(
        device,
        [
            "online", "last_seen_at", "rssi", "battery_percent", "battery_volts", "brand_id", "model_id",
            "last_payload", "probe_fault", "probe_fault_since", "last_source",
        ],
    )  # fmt: skip
    changed = device.online != was_online or bool(device.probe_fault) != bool(had_fault)
    return [events.device_status_change(device)] if changed else []


def _store(
    unit: Unit, device: Device, envelope: Envelope, extraction: Extraction, emitted: list[Event]
) -> tuple[str, list[int]]:
    stored = TemperatureReading.objects.insert_new(
        [
            TemperatureReading(
                unit=unit,
                device=device,
                organization_id=unit.organization_id,
                temperature=reading.temperature,
                humidity=extraction.humidity,
                battery_percent=extraction.battery_percent,
                battery_volts=extraction.battery_volts,
                rssi=envelope.rssi,
                recorded_at=reading.recorded_at,
                received_at=timezone.now(),
                uplink_id=reading.uplink_id,
                source=extraction.source,
            )
            for reading in extraction.readings
        ]
    )
    if not stored:
        return "duplicate", []
    READINGS_STORED.labels(extraction.source.partition(":")[0]).inc(len(stored))
    newest = stored[-1]
    previous_id, unit.latest_reading_id = unit.latest_reading_id, max(r.id for r in stored)
    # Only the newest reading drives the unit's state; older ones (a backlog, a late frame) land
    # in trends and compliance only.
    drives = unit.last_reading_at is None or newest.recorded_at >= unit.last_reading_at
    backfilled = [r.recorded_at for r in (stored[:-1] if drives else stored)]
    if drives:
        emitted.append(events.reading(unit, newest, previous_id if len(stored) == 1 else None))
        emitted += unit_state.on_reading(unit, newest.temperature, newest.recorded_at)  # saves the unit
    else:
        rows.save_fields(unit, ["latest_reading_id"])
    if backfilled and max(backfilled) >= window_start(timezone.now()):  # older: no cached figure changes
        emitted.append(events.readings_backfilled(unit, backfilled))
    return "stored", [reading.id for reading in stored]
