"""Devices that stopped sending go offline; so do units whose devices all went quiet."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from stats.models import Device, Unit, UnitStatus

from . import broadcast, events, unit_state
from .events import Event


def devices_sweep(*, now: datetime | None = None) -> list[Event]:
    """Mark devices silent for DEVICE_OFFLINE_AFTER_SECONDS offline (and their units). Returns the events."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.DEVICE_OFFLINE_AFTER_SECONDS)
    emitted: list[Event] = []
    with transaction.atomic():
        stale = list(
            Device.objects.select_for_update().filter(online=True).exclude(last_seen_at__gte=cutoff).order_by("id")
        )
        for device in stale:
            device.online = False
            device.save(update_fields=["online"])
            emitted.append(events.device_status_change(device))
        unit_ids = {device.unit_id for device in stale if device.unit_id}
        units = Unit.objects.select_for_update().filter(id__in=unit_ids).exclude(status=UnitStatus.OFFLINE)
        for unit in units.order_by("id"):
            if not unit.devices.filter(online=True).exists():
                emitted += unit_state.on_devices_silent(unit)
        broadcast.emit_on_commit(emitted)
    return emitted
