"""Database reads for the dashboard: each aggregation is a handful of GROUP BY / conditional counts.

Selectors return response-ready dicts (camelCase keys, datetimes as ISO strings) and know nothing
about the cache; `stats.services` decides what is cached.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, F, JSONField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import JSONObject
from django.utils import timezone

from . import windowed
from .models import (
    UNRESOLVED_ALERT_STATUSES,
    Alert,
    AlertStatus,
    Device,
    Membership,
    Organization,
    Site,
    Unit,
    UnitStatus,
)
from .statements import OneValueStatement
from .windowed import Stateful
from .windows import ComplianceState, TrendState


class UnitNotFound(Exception):
    """The unit is not one of the organization's: nothing is computed or cached for it."""


OUT_OF_RANGE_STATUSES = (UnitStatus.EXCURSION, UnitStatus.ALARM_ACTIVE)


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _unit_status_aggregates() -> dict[str, Count]:
    out_of_range = Q(status__in=OUT_OF_RANGE_STATUSES)
    return {
        "normal": Count("id", filter=Q(status__in=[UnitStatus.OK, UnitStatus.RESTORING])),
        "warning": Count("id", filter=Q(status=UnitStatus.EXCURSION)),
        "critical": Count("id", filter=Q(status=UnitStatus.ALARM_ACTIVE)),
        "offline": Count("id", filter=Q(status=UnitStatus.OFFLINE)),
        "too_hot": Count("id", filter=out_of_range & Q(last_temperature__gt=F("temp_max"))),
        "too_cold": Count("id", filter=out_of_range & Q(last_temperature__lt=F("temp_min"))),
        "total": Count("id"),
    }


def _alert_aggregates() -> dict[str, Count]:
    return {
        "unresolved": Count("id", filter=Q(status__in=UNRESOLVED_ALERT_STATUSES)),
        "active": Count("id", filter=Q(status=AlertStatus.ACTIVE)),
        "acknowledged": Count("id", filter=Q(status=AlertStatus.ACKNOWLEDGED)),
        "escalated": Count("id", filter=Q(status=AlertStatus.ESCALATED)),
        "resolved": Count("id", filter=Q(status=AlertStatus.RESOLVED)),
    }


def _device_aggregates() -> dict[str, Count]:
    # Not named `online`: an aggregate may not shadow a field it filters on.
    return {"n_online": Count("id", filter=Q(online=True)), "n_offline": Count("id", filter=Q(online=False))}


def _device_counts(counts: dict[str, int]) -> dict[str, int]:
    return {"online": counts["n_online"], "offline": counts["n_offline"]}


def _ints(counts: dict[str, object]) -> dict[str, int]:
    return {name: int(value or 0) for name, value in counts.items()}


def unit_status_counts(*, org_id: uuid.UUID) -> dict[str, int]:
    return _ints(Unit.objects.filter(organization_id=org_id).aggregate(**_unit_status_aggregates()))


def alert_counts(*, org_id: uuid.UUID, unit_id: uuid.UUID | None = None) -> dict[str, int]:
    """Raises UnitNotFound when `unit_id` is not a unit of the organization."""
    alerts = Alert.objects.filter(organization_id=org_id)
    if unit_id is not None:
        unit_or_raise(org_id=org_id, unit_id=unit_id)
        alerts = alerts.filter(unit_id=unit_id)
    return _ints(alerts.aggregate(**_alert_aggregates()))


def device_online_counts(*, org_id: uuid.UUID) -> dict[str, int]:
    return _device_counts(_ints(Device.objects.filter(organization_id=org_id).aggregate(**_device_aggregates())))


def temperature_trends(*, unit: Unit, now: datetime | None = None) -> list[dict[str, object]]:
    """The 96 15-minute buckets of the last 24 h (`stats.windows`): mean, min, max and whether
    the bucket left the unit's range."""
    return windowed.trend_state(unit=unit, now=now or timezone.now()).points()


def worst_state(unit_counts: dict[str, int]) -> str:
    for state in ("critical", "warning", "offline"):
        if unit_counts[state]:
            return state
    return "normal"


def _per_org(queryset: QuerySet, aggregates: dict[str, Count]) -> Subquery:
    """The organization's aggregates over `queryset` as one JSON object (a correlated subquery).

    No row (an organization without units, say) gives NULL, read as all zeros."""
    grouped = queryset.filter(organization_id=OuterRef("pk")).order_by().values("organization_id")
    return Subquery(grouped.annotate(_json=JSONObject(**aggregates)).values("_json"), output_field=JSONField())


def _json_counts(value: dict | None, names: Iterable[str]) -> dict[str, int]:
    counts = value or {}
    return {name: int(counts.get(name) or 0) for name in names}


def organization_stats_stateful(*, org_id: uuid.UUID) -> Stateful:
    """The dashboard's header figures, and the compliance state a reading updates them from.

    The counts are one query (a correlated JSON subquery per table): a stats recompute follows
    every state change of the organization, so its round trips are most of what the cache still
    costs the database. The 24 h compliance is one more (`windowed.compliance_state`)."""
    now = timezone.now()
    return _organization_stats(org_id, windowed.compliance_state(org_id=org_id, now=now), now)


def organization_stats_from_state(state: bytes, *, org_id: uuid.UUID) -> Stateful | None:
    """The stats with their counts computed again and the 24 h compliance from its kept state, if
    that holds the newest reading of every unit that has one in the window (None: compute them
    whole). Two light queries (the counts, the units' newest reading ids) instead of aggregating
    24 h of the organization's readings: a state change alters the counts only."""
    now = timezone.now()
    compliance = ComplianceState.loads(state)
    units = Unit.objects.filter(organization_id=org_id).values_list("id", "latest_reading_id", "last_reading_at")
    if not compliance.current(units, now):
        return None
    compliance.slide(now)
    return _organization_stats(org_id, compliance, now)


def _counts_of(org_id: object) -> QuerySet:
    """The organization's counts, each a JSON object from a correlated subquery: one statement."""
    return (
        Organization.objects.filter(pk=org_id)
        .order_by()
        .annotate(
            _units=_per_org(Unit.objects.all(), _unit_status_aggregates()),
            _alerts=_per_org(Alert.objects.all(), _alert_aggregates()),
            _devices=_per_org(Device.objects.all(), _device_aggregates()),
            _members=_per_org(Membership.objects.all(), {"n": Count("id")}),
            _sites=_per_org(Site.objects.all(), {"n": Count("id")}),
        )
        .values_list("_units", "_alerts", "_devices", "_members", "_sites")[:1]
    )


# Compiled once: building it took ten times the CPU the database spends running it.
_COUNTS = OneValueStatement(_counts_of, Organization._meta.pk)
_COUNT_NAMES = tuple(_unit_status_aggregates()), tuple(_alert_aggregates()), tuple(_device_aggregates())


def _organization_stats(org_id: uuid.UUID, compliance: ComplianceState, now: datetime) -> Stateful:
    units, alerts, devices = _COUNT_NAMES
    unit_json, alert_json, device_json, member_json, site_json = _COUNTS.first(org_id) or (None,) * 5
    unit_counts = _json_counts(unit_json, units)
    data = {
        "organizationId": str(org_id),
        "unitCounts": unit_counts,
        "alertCounts": _json_counts(alert_json, alerts),
        "deviceCounts": _device_counts(_json_counts(device_json, devices)),
        "compliancePercentage": compliance.percentage(),
        "memberCount": _json_counts(member_json, ["n"])["n"],
        "siteCount": _json_counts(site_json, ["n"])["n"],
        "worstState": worst_state(unit_counts),
        "lastUpdated": iso(now),
    }
    return Stateful(data, compliance.dumps())


def organization_stats(*, org_id: uuid.UUID) -> dict[str, object]:
    return organization_stats_stateful(org_id=org_id).data


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
                    "batteryPercent": device.battery_percent,
                    "batteryVolts": device.battery_volts,
                    "rssi": device.rssi,
                    "model": f"{device.brand_id}/{device.model_id}" if device.model_id else None,
                    "probeFault": device.probe_fault or None,
                }
                for device in unit.devices.all()
            ],
        }
        for unit in units
    ]


def unit_or_raise(*, org_id: uuid.UUID, unit_id: uuid.UUID) -> Unit:
    unit = Unit.objects.filter(organization_id=org_id, id=unit_id).first()
    if unit is None:
        raise UnitNotFound(str(unit_id))
    return unit


def unit_trend_stateful(*, org_id: uuid.UUID, unit_id: uuid.UUID) -> Stateful:
    """The unit's 24 h trend as the API answers it, and its state. Raises UnitNotFound."""
    unit = unit_or_raise(org_id=org_id, unit_id=unit_id)
    state = windowed.trend_state(unit=unit, now=timezone.now())
    return Stateful({"unitId": str(unit.id), "points": state.points()}, state.dumps())


def unit_trend_from_state(state: bytes, *, org_id: uuid.UUID, unit_id: uuid.UUID) -> Stateful | None:
    """The trend rebuilt from its kept state, if that state holds the unit's newest reading and
    its current range (None: compute it). One query, for the unit, instead of two. Raises
    UnitNotFound."""
    unit = unit_or_raise(org_id=org_id, unit_id=unit_id)
    trend = TrendState.loads(state)
    if not trend.current(unit.latest_reading_id, unit.temp_min, unit.temp_max):
        return None
    trend.slide(timezone.now())
    return Stateful({"unitId": str(unit.id), "points": trend.points()}, trend.dumps())


def unit_trend(*, org_id: uuid.UUID, unit_id: uuid.UUID) -> dict[str, object]:
    return unit_trend_stateful(org_id=org_id, unit_id=unit_id).data


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


def units_list(*, org_id: uuid.UUID) -> dict[str, object]:
    return {"units": units_with_devices(org_id=org_id)}


def alerts_list(*, org_id: uuid.UUID) -> dict[str, object]:
    return {"alerts": unresolved_alerts(org_id=org_id)}
