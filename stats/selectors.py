"""Database reads for the dashboard: each aggregation is a handful of GROUP BY / conditional counts.

Selectors return response-ready dicts (camelCase keys, datetimes as ISO strings) and know nothing
about the cache; `stats.services` decides what is cached.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db.models import Avg, Count, F, Max, Min, Q
from django.db.models.functions import ExtractMinute, Floor, TruncHour
from django.utils import timezone

from .models import (
    UNRESOLVED_ALERT_STATUSES,
    Alert,
    AlertStatus,
    Device,
    Membership,
    Organization,
    Site,
    TemperatureReading,
    Unit,
    UnitStatus,
)

TREND_HOURS = 24
TREND_BUCKET_MINUTES = 15
COMPLIANCE_HOURS = 24
OUT_OF_RANGE_STATUSES = (UnitStatus.EXCURSION, UnitStatus.ALARM_ACTIVE)


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def unit_status_counts(*, org_id: uuid.UUID) -> dict[str, int]:
    out_of_range = Q(status__in=OUT_OF_RANGE_STATUSES)
    counts = Unit.objects.filter(organization_id=org_id).aggregate(
        normal=Count("id", filter=Q(status__in=[UnitStatus.OK, UnitStatus.RESTORING])),
        warning=Count("id", filter=Q(status=UnitStatus.EXCURSION)),
        critical=Count("id", filter=Q(status=UnitStatus.ALARM_ACTIVE)),
        offline=Count("id", filter=Q(status=UnitStatus.OFFLINE)),
        too_hot=Count("id", filter=out_of_range & Q(last_temperature__gt=F("temp_max"))),
        too_cold=Count("id", filter=out_of_range & Q(last_temperature__lt=F("temp_min"))),
        total=Count("id"),
    )
    return {name: int(value or 0) for name, value in counts.items()}


def alert_counts(*, org_id: uuid.UUID, unit_id: uuid.UUID | None = None) -> dict[str, int]:
    alerts = Alert.objects.filter(organization_id=org_id)
    if unit_id is not None:
        alerts = alerts.filter(unit_id=unit_id)
    counts = alerts.aggregate(
        unresolved=Count("id", filter=Q(status__in=UNRESOLVED_ALERT_STATUSES)),
        active=Count("id", filter=Q(status=AlertStatus.ACTIVE)),
        acknowledged=Count("id", filter=Q(status=AlertStatus.ACKNOWLEDGED)),
        escalated=Count("id", filter=Q(status=AlertStatus.ESCALATED)),
        resolved=Count("id", filter=Q(status=AlertStatus.RESOLVED)),
    )
    return {name: int(value or 0) for name, value in counts.items()}


def device_online_counts(*, org_id: uuid.UUID) -> dict[str, int]:
    counts = Device.objects.filter(organization_id=org_id).aggregate(
        n_online=Count("id", filter=Q(online=True)),
        n_offline=Count("id", filter=Q(online=False)),
    )
    return {"online": int(counts["n_online"] or 0), "offline": int(counts["n_offline"] or 0)}


def _alarm_state(low: float, high: float, unit: Unit) -> str:
    if high > unit.temp_max:
        return "too_hot"
    if low < unit.temp_min:
        return "too_cold"
    return "normal"


def temperature_trends(*, unit: Unit, now: datetime | None = None) -> list[dict[str, object]]:
    """24 h of 15-minute buckets: mean, min, max and whether the bucket left the unit's range."""
    now = now or timezone.now()
    rows = (
        TemperatureReading.objects.filter(unit_id=unit.id, recorded_at__gte=now - timedelta(hours=TREND_HOURS))
        .annotate(hour=TruncHour("recorded_at"), quarter=Floor(ExtractMinute("recorded_at") / TREND_BUCKET_MINUTES))
        .values("hour", "quarter")
        .annotate(mean=Avg("temperature"), low=Min("temperature"), high=Max("temperature"))
        .order_by("hour", "quarter")
    )
    return [
        {
            "timestamp": iso(row["hour"] + timedelta(minutes=TREND_BUCKET_MINUTES * int(row["quarter"]))),
            "temperature": round(row["mean"], 2),
            "min": round(row["low"], 2),
            "max": round(row["high"], 2),
            "alarmState": _alarm_state(row["low"], row["high"], unit),
        }
        for row in rows
    ]


def compliance_percentage(*, org_id: uuid.UUID, now: datetime | None = None) -> float | None:
    """Share of the last 24 h of readings inside their unit's range; None without readings."""
    now = now or timezone.now()
    counts = TemperatureReading.objects.filter(
        organization_id=org_id, recorded_at__gte=now - timedelta(hours=COMPLIANCE_HOURS)
    ).aggregate(
        total=Count("id"),
        in_range=Count("id", filter=Q(temperature__gte=F("unit__temp_min"), temperature__lte=F("unit__temp_max"))),
    )
    if not counts["total"]:
        return None
    return round(100.0 * counts["in_range"] / counts["total"], 2)


def worst_state(unit_counts: dict[str, int]) -> str:
    for state in ("critical", "warning", "offline"):
        if unit_counts[state]:
            return state
    return "normal"


def organization_stats(*, org_id: uuid.UUID) -> dict[str, object]:
    unit_counts = unit_status_counts(org_id=org_id)
    return {
        "organizationId": str(org_id),
        "unitCounts": unit_counts,
        "alertCounts": alert_counts(org_id=org_id),
        "deviceCounts": device_online_counts(org_id=org_id),
        "compliancePercentage": compliance_percentage(org_id=org_id),
        "memberCount": Membership.objects.filter(organization_id=org_id).count(),
        "siteCount": Site.objects.filter(organization_id=org_id).count(),
        "worstState": worst_state(unit_counts),
        "lastUpdated": iso(timezone.now()),
    }


def organizations_for_user(*, memberships: dict[str, str]) -> list[dict[str, object]]:
    orgs = Organization.objects.filter(id__in=list(memberships)).order_by("name")
    return [
        {
            "id": str(org.id),
            "name": org.name,
            "slug": org.slug,
            "timezone": org.timezone,
            "role": memberships[str(org.id)],
        }
        for org in orgs
    ]


def units_with_devices(*, org_id: uuid.UUID) -> list[dict[str, object]]:
    units = Unit.objects.filter(organization_id=org_id).select_related("site").prefetch_related("devices")
    return [
        {
            "id": str(unit.id),
            "name": unit.name,
            "siteId": unit.site_id,
            "siteName": unit.site.name,
            "unitType": unit.unit_type,
            "tempMin": unit.temp_min,
            "tempMax": unit.temp_max,
            "status": unit.status,
            "lastReadingAt": iso(unit.last_reading_at),
            "lastTemperature": unit.last_temperature,
            "devices": [
                {
                    "devEui": device.dev_eui,
                    "online": device.online,
                    "lastSeenAt": iso(device.last_seen_at),
                    "battery": device.battery,
                    "rssi": device.rssi,
                }
                for device in unit.devices.all()
            ],
        }
        for unit in units
    ]


def unit_in_org(*, org_id: uuid.UUID, unit_id: uuid.UUID) -> Unit | None:
    return Unit.objects.filter(organization_id=org_id, id=unit_id).first()


def unresolved_alerts(*, org_id: uuid.UUID, limit: int = 200) -> list[dict[str, object]]:
    alerts = (
        Alert.objects.filter(organization_id=org_id, status__in=UNRESOLVED_ALERT_STATUSES)
        .select_related("unit")
        .order_by("-triggered_at")[:limit]
    )
    return [
        {
            "id": alert.id,
            "unitId": str(alert.unit_id),
            "unitName": alert.unit.name,
            "status": alert.status,
            "severity": alert.severity,
            "triggerTemperature": alert.trigger_temperature,
            "thresholdViolated": alert.threshold_violated,
            "triggeredAt": iso(alert.triggered_at),
            "acknowledgedAt": iso(alert.acknowledged_at),
        }
        for alert in alerts
    ]
