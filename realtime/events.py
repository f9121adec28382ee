"""Dashboard events: their names and payloads. What each can change in the cache is the
catalogue's (`stats.queries`): the events are its changes that dashboards are told of.

A reading that changes no state touches only its unit's trend; counts and stats are invalidated
only by the events that change them (every reading invalidating its organization's keys wiped
the cache about once a second for a 50-unit organization).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from stats import queries, services
from stats.cache import CacheKey
from stats.models import Alert, Device, TemperatureReading, Unit
from stats.selectors import iso
from stats.windows import Reading

# unitUpdate -> UNIT_UPDATE, for every change of the catalogue that dashboards are told of.
EventType = StrEnum(
    "EventType", [(re.sub(r"(?<!^)(?=[A-Z])", "_", c.name).upper(), c.name) for c in queries.CHANGES if c.event]
)


@dataclass(frozen=True)
class Event:
    type: EventType
    org_id: uuid.UUID
    unit_id: uuid.UUID | None
    data: dict[str, object] = field(default_factory=dict)

    @property
    def change(self) -> queries.Change:
        return queries.change_named(str(self.type))

    @property
    def whole_organization(self) -> bool:
        """Invalidates every key of its organization (`cache.invalidate_org`), not named keys."""
        return self.change is queries.ORG_CHANGED

    def effects(self) -> dict[CacheKey, queries.Effect]:
        """Every cached key this event can change, with what it does to it (the catalogue's)."""
        if self.whole_organization:
            return {}
        return services.change_keys(self.change, org_id=self.org_id, unit_id=self.unit_id)

    def cache_keys(self) -> list[CacheKey]:
        return list(self.effects())

    def reading(self) -> tuple[Reading, float, float] | None:
        """A reading event's reading, with its unit's range then: what an in-place update adds."""
        data = self.data
        if self.type != EventType.READING or not all(data.get(k) is not None for k in ("readingId", "recordedAt")):
            return None
        recorded = datetime.fromisoformat(str(data["recordedAt"]).replace("Z", "+00:00"))
        previous = data.get("previousReadingId")
        added = Reading(int(data["readingId"]), str(self.unit_id), float(data["temperature"]), recorded, previous)
        return added, data["tempMin"], data["tempMax"]

    def message(self, patches: dict[str, object] | None = None) -> dict[str, object]:
        """As sent to dashboards; `patches`: per query name, what the page paints from the event
        instead of refetching (`stats.queries.Query.patcher`)."""
        return {"type": str(self.type), "data": {**self.data, "patches": patches} if patches else self.data}


def reading(unit: Unit, stored: TemperatureReading, previous_id: int | None) -> Event:
    """The unit's newest reading; `previous_id`: its reading stored just before (None: unknown)."""
    return Event(
        EventType.READING,
        unit.organization_id,
        unit.id,
        {
            "unitId": str(unit.id),
            "temperature": stored.temperature,
            "recordedAt": iso(stored.recorded_at),
            "readingId": stored.id,
            "previousReadingId": previous_id,
            "tempMin": unit.temp_min,
            "tempMax": unit.temp_max,
        },
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
