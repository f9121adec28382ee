"""Operators acknowledge and resolve alerts; each change is broadcast after commit."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from stats.models import Alert, AlertStatus, Unit

from . import broadcast, events, unit_state
from .events import Event, EventType


class AlertActionError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _locked_alert(org_id: uuid.UUID, alert_id: int) -> Alert:
    alert = Alert.objects.select_for_update().filter(organization_id=org_id, id=alert_id).first()
    if alert is None:
        raise AlertActionError(404, "alert not found")
    return alert


def alert_acknowledge(*, org_id: uuid.UUID, alert_id: int, user_id: int) -> Alert:
    with transaction.atomic():
        alert = _locked_alert(org_id, alert_id)
        if alert.status == AlertStatus.RESOLVED:
            raise AlertActionError(409, "alert is already resolved")
        if alert.status == AlertStatus.ACKNOWLEDGED:
            return alert
        alert.status = AlertStatus.ACKNOWLEDGED
        alert.acknowledged_at = timezone.now()
        alert.acknowledged_by_id = user_id
        alert.save(update_fields=["status", "acknowledged_at", "acknowledged_by"])
        broadcast.emit_on_commit([events.alert_event(EventType.ALERT_ACKNOWLEDGED, alert)])
    return alert


def alert_resolve(*, org_id: uuid.UUID, alert_id: int, user_id: int) -> Alert:
    """Resolve by hand; a unit that was restoring is then back to ok.

    Locks the unit before the alert, as an uplink does (its device and unit, then the unit's
    open alert): in the opposite order the two could wait for each other until PostgreSQL
    aborted one of them."""
    with transaction.atomic():
        unit_id = Alert.objects.filter(organization_id=org_id, id=alert_id).values_list("unit_id", flat=True).first()
        if unit_id is None:
            raise AlertActionError(404, "alert not found")
        unit = Unit.objects.select_for_update().get(id=unit_id)
        alert = _locked_alert(org_id, alert_id)
        if alert.unit_id != unit.id:  # moved to another unit (admin) between the two reads
            raise AlertActionError(409, "alert changed meanwhile; retry")
        if alert.status == AlertStatus.RESOLVED:
            return alert
        alert.status = AlertStatus.RESOLVED
        alert.resolved_at = timezone.now()
        alert.resolved_by_id = user_id
        alert.save(update_fields=["status", "resolved_at", "resolved_by"])
        emitted: list[Event] = [events.alert_event(EventType.ALERT_RESOLVED, alert)]
        emitted += unit_state.on_alert_resolved_by_hand(unit)
        broadcast.emit_on_commit(emitted)
    return alert
