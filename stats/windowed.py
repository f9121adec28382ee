"""Database reads of the windowed figures, as states (`stats.windows`) a reading can update: a
unit's trend and an organization's compliance. Each state is read in one statement (one
snapshot): its counts and the reading ids it includes agree."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count, DateTimeField, F, FloatField, IntegerField, Max, Min, Q, Sum, UUIDField, Value
from django.db.models.functions import ExtractMinute, Floor, Round, TruncHour

from .models import TemperatureReading, Unit
from .windows import ComplianceState, TrendState, window_start


@dataclass(frozen=True)
class Stateful:
    """A query's response data, and the state a reading updates it from (`windows`)."""

    data: object
    state: bytes


def _bucketed(readings):
    return readings.annotate(hour=TruncHour("recorded_at"), quarter=Floor(ExtractMinute("recorded_at") / 15))


def _stamp(row: dict) -> int:
    hour = row["hour"] if row["hour"].tzinfo else row["hour"].replace(tzinfo=UTC)
    return int((hour + timedelta(minutes=15 * int(row["quarter"]))).timestamp())


def trend_state(*, unit: Unit, now: datetime) -> TrendState:
    rows = (
        _bucketed(TemperatureReading.objects.filter(unit_id=unit.id, recorded_at__gte=window_start(now)))
        .values("hour", "quarter")
        .annotate(
            total=Sum(Round(F("temperature") * 1000)),
            count=Count("id"),
            low=Min("temperature"),
            high=Max("temperature"),
            last=Max("id"),
        )  # fmt: skip
        .order_by()
    )
    state = TrendState(unit.temp_min, unit.temp_max)
    for row in rows:
        state.buckets[_stamp(row)] = [int(row["total"]), row["count"], row["low"], row["high"]]
        state.max_id = max(state.max_id, row["last"])
    return state


def compliance_state(*, org_id: uuid.UUID, now: datetime) -> ComplianceState:
    """The organization's in-range counts per bucket, and per unit the newest reading counted:
    two groupings of the same rows in one statement (UNION ALL), so they agree."""
    readings = TemperatureReading.objects.filter(organization_id=org_id, recorded_at__gte=window_start(now))
    in_range = Q(temperature__gte=F("unit__temp_min"), temperature__lte=F("unit__temp_max"))
    columns = ("hour", "quarter", "who", "a", "b")
    per_bucket = (
        _bucketed(readings)
        .values("hour", "quarter")
        .annotate(who=Value(None, output_field=UUIDField()), a=Count("id", filter=in_range), b=Count("id"))
        .values(*columns)
        .order_by()
    )
    per_unit = (
        readings.values("unit_id")
        .annotate(
            hour=Value(None, output_field=DateTimeField()),
            quarter=Value(None, output_field=FloatField()),
            who=F("unit_id"),
            a=Max("id"),
            b=Value(0, output_field=IntegerField()),
        )  # fmt: skip
        .values(*columns)
        .order_by()
    )
    state = ComplianceState()
    for row in per_bucket.union(per_unit, all=True):
        if row["hour"] is None:
            state.max_ids[str(row["who"])] = row["a"]
        else:
            state.buckets[_stamp(row)] = [row["a"], row["b"]]
    return state
