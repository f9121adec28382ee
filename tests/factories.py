"""Small builders for the domain; tests say what they need and get real rows."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from stats.models import Alert, AlertStatus, Device, Membership, Organization, Role, Site, TemperatureReading, Unit

_seq = itertools.count(1)


def organization(name: str | None = None) -> Organization:
    n = next(_seq)
    return Organization.objects.create(name=name or f"Org {n}", slug=f"org-{n}")


def user(username: str | None = None, *, password: str = "pw", **extra: object):
    return get_user_model().objects.create_user(username or f"user{next(_seq)}", password=password, **extra)


def member(org: Organization, *, role: str = Role.VIEWER, username: str | None = None):
    person = user(username)
    Membership.objects.create(user=person, organization=org, role=role)
    return person


def unit(org: Organization, *, temp_min: float = 2.0, temp_max: float = 8.0, **extra: object) -> Unit:
    site = Site.objects.filter(organization=org).first() or Site.objects.create(organization=org, name="Kitchen")
    return Unit.objects.create(
        organization=org,
        site=site,
        name=extra.pop("name", f"Fridge {next(_seq)}"),
        temp_min=temp_min,
        temp_max=temp_max,
        **extra,
    )


def device(u: Unit, *, dev_eui: str | None = None, online: bool = True) -> Device:
    return Device.objects.create(
        organization_id=u.organization_id,
        unit=u,
        dev_eui=dev_eui or f"{next(_seq):016X}",
        online=online,
        last_seen_at=timezone.now() if online else None,
    )


def reading(
    u: Unit, temperature: float, *, at: datetime | None = None, dev: Device | None = None
) -> TemperatureReading:
    at = at or timezone.now()
    return TemperatureReading.objects.create(
        unit=u,
        device=dev,
        organization_id=u.organization_id,
        temperature=temperature,
        recorded_at=at,
        received_at=at,
        uplink_id=f"test-{next(_seq)}",
    )


def alert(u: Unit, *, status: str = AlertStatus.ACTIVE, minutes_ago: int = 5) -> Alert:
    return Alert.objects.create(
        organization_id=u.organization_id,
        unit=u,
        status=status,
        trigger_temperature=u.temp_max + 2,
        threshold_violated=Alert.Threshold.MAX,
        triggered_at=timezone.now() - timedelta(minutes=minutes_ago),
    )
