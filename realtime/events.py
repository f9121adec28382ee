"""Dashboard events: their names, payloads, and the cache keys each one can change.

The key mapping is DESIGN section 4's table. A reading that changes no state touches only its
unit's trend; counts and stats are invalidated only by the events that change them (trap 2).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from stats import services
from stats.cache import QueryType, cache_key
from stats.models import Alert, Device, Unit
from stats.selectors import iso


class EventType(StrEnum):
    UNIT_UPDATE = "unitUpdate"
    READING = "reading"
    # Older readings stored late (a device's backlog, a reprocessed uplink): they change the
    # unit's trend and the 24 h compliance, never its state.
    READINGS_BACKFILLED = "readingsBackfilled"
    ALERT_CREATED = "alertCreated"
    ALERT_ACKNOWLEDGED = "alertAcknowledged"
    ALERT_ESCALATED = "alertEscalated"
    ALERT_RESOLVED = "alertResolved"
    DEVICE_STATUS_CHANGE = "deviceStatusChange"
    # Units, devices, sites, readings or alerts were edited outside the event path (the admin):
    # every key of the organization is invalidated, and dashboards reload everything.
    ORG_CHANGED = "orgChanged"


_ALERT_EVENTS = {
    EventType.ALERT_CREATED,
    EventType.ALERT_ACKNOWLEDGED,
    EventType.ALERT_ESCALATED,
    EventType.ALERT_RESOLVED,
}


@dataclass(frozen=True)
class Event:
    type: EventType
    org_id: uuid.UUID
    unit_id: uuid.UUID | None
    data: dict[str, object] = field(default_factory=dict)

    @property
    def whole_organization(self) -> bool:
        """Invalidates every key of its organization (`cache.invalidate_org`), not named keys."""
        return self.type is EventType.ORG_CHANGED

    def cache_keys(self) -> list[str]:
        org, unit = self.org_id, self.unit_id
        if self.whole_organization:
            return []
        if self.type is EventType.READING:
            return [cache_key(QueryType.TEMPERATURE_TRENDS, org, unit)] if unit else []
        if self.type is EventType.READINGS_BACKFILLED:
            return [cache_key(QueryType.TEMPERATURE_TRENDS, org, unit), cache_key(QueryType.STATS, org)]
        if self.type is EventType.UNIT_UPDATE:
            return [cache_key(QueryType.UNITS_STATUS, org), cache_key(QueryType.STATS, org)]
        if self.type in _ALERT_EVENTS:
            keys = [cache_key(QueryType.ALERTS_COUNT, org), cache_key(QueryType.STATS, org)]
            if unit:
                keys.append(cache_key(QueryType.ALERTS_COUNT, org, unit))
            return keys
        if self.type is EventType.DEVICE_STATUS_CHANGE:
            return [cache_key(QueryType.DEVICES_ONLINE, org), cache_key(QueryType.STATS, org)]
        raise ValueError(self.type)

    def refreshers(self) -> dict[str, Callable[[], None]]:
        """Keys that, when cached, are recomputed once by the emitter after this event's
        invalidation and before it is sent (under their single-flight lock), instead of being
        left to the next reader's miss.

        A reading changes its unit's trend and nothing else, once a minute per unit: left to
        the readers, every open dashboard of the unit would miss on its refetch. Recomputed
        here, once, from the committed reading, the value stored is exact when the event
        arrives; a poll that misses meanwhile waits for it (stale sets are still refused:
        `cache.recompute` stores only if no newer invalidation happened meanwhile). Only keys
        that were cached are refreshed, so units nobody watches cost nothing.
        """
        if self.type is EventType.READING and self.unit_id:
            org, unit = self.org_id, self.unit_id
            key = cache_key(QueryType.TEMPERATURE_TRENDS, org, unit)
            return {key: lambda: services.temperature_trends_refresh(org_id=org, unit_id=unit)}
        return {}

    def message(self) -> dict[str, object]:
        return {"type": str(self.type), "data": self.data}


def reading(unit: Unit, temperature: float, recorded_at) -> Event:
    return Event(
        EventType.READING,
        unit.organization_id,
        unit.id,
        {"unitId": str(unit.id), "temperature": temperature, "recordedAt": iso(recorded_at)},
    )


def unit_update(unit: Unit, previous_status: str) -> Event:
    return Event(
        EventType.UNIT_UPDATE,
        unit.organization_id,
        unit.id,
        {
            "unitId": str(unit.id),
            "status": unit.status,
            "previousStatus": previous_status,
            "lastTemperature": unit.last_temperature,
            "lastReadingAt": iso(unit.last_reading_at),
        },
    )


def alert_event(event_type: EventType, alert: Alert) -> Event:
    return Event(
        event_type,
        alert.organization_id,
        alert.unit_id,
        {
            "alertId": alert.id,
            "unitId": str(alert.unit_id),
            "status": alert.status,
            "severity": alert.severity,
            "triggerTemperature": alert.trigger_temperature,
            "thresholdViolated": alert.threshold_violated,
            "triggeredAt": iso(alert.triggered_at),
        },
    )


def readings_backfilled(unit: Unit, recorded: list) -> Event:
    return Event(
        EventType.READINGS_BACKFILLED,
        unit.organization_id,
        unit.id,
        {"unitId": str(unit.id), "count": len(recorded), "oldest": iso(min(recorded)), "newest": iso(max(recorded))},
    )


def org_changed(org_id: uuid.UUID) -> Event:
    return Event(EventType.ORG_CHANGED, org_id, None, {})


def device_status_change(device: Device) -> Event:
    return Event(
        EventType.DEVICE_STATUS_CHANGE,
        device.organization_id,
        device.unit_id,
        {
            "devEui": device.dev_eui,
            "unitId": str(device.unit_id) if device.unit_id else None,
            "online": device.online,
            "probeFault": device.probe_fault or None,
        },
    )
