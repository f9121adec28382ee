"""The unit state machine: every change of a unit's status goes through here (readings, a manual
resolve, the offline sweep). Each function saves the unit (and its alerts) and returns the events.

    ok/offline/restoring --out of range--> excursion (alert created)
    excursion --still out `ALARM_CONFIRM_DELAY_SECONDS` after it began--> alarm_active (alert escalated)
    excursion/alarm_active --inside with 0.5 °C hysteresis--> restoring (alert resolved)
    restoring --in range for `RESTORE_STABLE_SECONDS`--> ok;  offline --in range--> ok
    restoring --its alert resolved by hand, no other open--> ok
    any --every device silent `DEVICE_OFFLINE_AFTER_SECONDS`--> offline
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from stats import rows
from stats.models import UNRESOLVED_ALERT_STATUSES, Alert, AlertStatus, Unit, UnitStatus

from . import events
from .events import Event, EventType

HYSTERESIS_C = 0.5
_OUT_OF_RANGE = (UnitStatus.EXCURSION, UnitStatus.ALARM_ACTIVE)


def _unresolved_alert(unit: Unit) -> Alert | None:
    return (
        Alert.objects.select_for_update()
        .filter(unit=unit, status__in=UNRESOLVED_ALERT_STATUSES)
        .order_by("-triggered_at")
        .first()
    )


def _side(unit: Unit, temperature: float | None) -> str | None:
    if unit.status not in _OUT_OF_RANGE or temperature is None:
        return None
    if temperature > unit.temp_max:
        return "hot"
    return "cold" if temperature < unit.temp_min else None


def _excursion(unit: Unit, temperature: float, at: datetime) -> list[Event]:
    emitted: list[Event] = []
    alert = _unresolved_alert(unit)
    if unit.status not in _OUT_OF_RANGE:
        unit.status = UnitStatus.EXCURSION
        unit.excursion_started_at = at
        unit.restoring_since = None
    if alert is None:
        alert = Alert.objects.create(
            organization_id=unit.organization_id,
            unit=unit,
            severity=Alert.Severity.WARNING,
            trigger_temperature=temperature,
            threshold_violated=Alert.Threshold.MAX if temperature > unit.temp_max else Alert.Threshold.MIN,
            triggered_at=at,
        )
        emitted.append(events.alert_event(EventType.ALERT_CREATED, alert))
    confirm = timedelta(seconds=settings.ALARM_CONFIRM_DELAY_SECONDS)
    if unit.status == UnitStatus.EXCURSION and at - unit.excursion_started_at >= confirm:
        unit.status = UnitStatus.ALARM_ACTIVE
        alert.status = AlertStatus.ESCALATED
        alert.severity = Alert.Severity.CRITICAL
        alert.save(update_fields=["status", "severity"])
        emitted.append(events.alert_event(EventType.ALERT_ESCALATED, alert))
    return emitted


def _back_inside(unit: Unit, at: datetime) -> list[Event]:
    unit.status = UnitStatus.RESTORING
    unit.restoring_since = at
    unit.excursion_started_at = None
    alert = _unresolved_alert(unit)
    if alert is None:
        return []
    alert.status = AlertStatus.RESOLVED
    alert.resolved_at = at
    alert.save(update_fields=["status", "resolved_at"])
    return [events.alert_event(EventType.ALERT_RESOLVED, alert)]


def on_reading(unit: Unit, temperature: float, at: datetime) -> list[Event]:
    """The unit's newest reading (older ones never move it)."""
    previous, previous_side = unit.status, _side(unit, unit.last_temperature)
    emitted: list[Event] = []
    well_inside = unit.temp_min + HYSTERESIS_C <= temperature <= unit.temp_max - HYSTERESIS_C
    if temperature > unit.temp_max or temperature < unit.temp_min:
        emitted += _excursion(unit, temperature, at)
    elif unit.status in _OUT_OF_RANGE:
        if well_inside:
            emitted += _back_inside(unit, at)
    elif unit.status == UnitStatus.RESTORING:
        stable = timedelta(seconds=settings.RESTORE_STABLE_SECONDS)
        if unit.restoring_since is None or at - unit.restoring_since >= stable:
            unit.status = UnitStatus.OK
            unit.restoring_since = None
    elif unit.status == UnitStatus.OFFLINE:
        unit.status = UnitStatus.OK
    unit.last_temperature = temperature
    unit.last_reading_at = at
    rows.save_fields(
        unit,
        [
            "status", "excursion_started_at", "restoring_since", "last_temperature", "last_reading_at",
            "latest_reading_id",
        ],
    )  # fmt: skip
    # too_hot / too_cold counts follow the side of an out-of-range unit, not only its status.
    if unit.status != previous or _side(unit, temperature) != previous_side:
        emitted.append(events.unit_update(unit, previous))
    return emitted


def on_alert_resolved_by_hand(unit: Unit) -> list[Event]:
    """A restoring unit whose last open alert was resolved by hand is ok again."""
    if unit.status != UnitStatus.RESTORING or unit.alerts.filter(status__in=UNRESOLVED_ALERT_STATUSES).exists():
        return []
    unit.status = UnitStatus.OK
    unit.restoring_since = None
    unit.save(update_fields=["status", "restoring_since"])
    return [events.unit_update(unit, UnitStatus.RESTORING)]


def on_devices_silent(unit: Unit) -> list[Event]:
    """Every device of the unit stopped reporting: the unit is offline."""
    if unit.status == UnitStatus.OFFLINE:
        return []
    previous = unit.status
    unit.status = UnitStatus.OFFLINE
    unit.save(update_fields=["status"])
    return [events.unit_update(unit, previous)]
