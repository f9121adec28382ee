"""The time-windowed figures (a unit's 24 h trend, an organization's 24 h compliance) as states that
the database computes and a reading updates in place, with the same arithmetic either way.

Both windows are aligned to 15-minute buckets: the current bucket and the 95 before it. A figure
then changes only when a reading lands or a bucket leaves the window, never continuously, so a
cached figure can equal a fresh computation exactly; a reading updates it without the database.
Means come from integer sums of milli-degrees (readings are stored to 0.001 °C), so a mean built
up reading by reading is the mean the database computes, to the last digit.

A state also records, per unit, the highest reading id it includes: a reading's update is applied
once, whether the state was computed before or after the reading was committed (readings of one
unit are written one at a time, under the unit's lock, so their ids grow in commit order). And a
reading says which reading of its unit was stored before it: a state that does not hold that one
missed an update (a write lost in a Redis failover, an update that failed) and is recomputed
rather than updated, so a lost update never outlives the next reading.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import orjson

BUCKET = timedelta(minutes=15)
BUCKETS = 96  # 24 h
_CENT = Decimal("0.01")


def bucket_of(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


def ms_to_next_bucket(now: datetime) -> int:
    """Milliseconds until the next bucket starts (when a window's oldest bucket leaves it)."""
    return max(1, int((bucket_of(now) + BUCKET - now) / timedelta(milliseconds=1)))


def window_start(now: datetime) -> datetime:
    """The first instant of the window that `now` falls in (its oldest bucket's start)."""
    return bucket_of(now) - (BUCKETS - 1) * BUCKET


def milli(temperature: float) -> int:
    """A stored temperature in whole milli-degrees (the database sums the same integers)."""
    return round(temperature * 1000)


def mean(sum_milli: int, count: int) -> float:
    return float((Decimal(sum_milli) / (count * 1000)).quantize(_CENT, rounding=ROUND_HALF_EVEN))


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _stamp(bucket: datetime) -> int:
    return int(bucket.timestamp())


class MissedUpdate(Exception):
    """The state does not hold the reading stored before this one: it must be recomputed."""


@dataclass
class Reading:
    id: int
    unit_id: str
    temperature: float
    recorded_at: datetime
    previous_id: int | None = None  # the unit's reading stored just before this one


def _applies(reading: Reading, held: int) -> bool:
    """Whether to add `reading` to a state holding the unit's readings up to id `held`."""
    if reading.id <= held:
        return False  # computed after the reading was committed: already in it
    if held != (reading.previous_id or 0):
        raise MissedUpdate(f"holds reading {held}, the unit's previous one is {reading.previous_id}")
    return True


@dataclass
class TrendState:
    """One unit's buckets: {bucket start (epoch s): [sum of milli-degrees, count, min, max]}."""

    temp_min: float
    temp_max: float
    max_id: int = 0
    buckets: dict[int, list] = field(default_factory=dict)

    def add(self, reading: Reading, now: datetime) -> int | None:
        """Apply one reading; the start (epoch s) of the bucket it changed, None when it is already
        counted or outside the window. Raises MissedUpdate when the state lacks the unit's
        previous reading."""
        if not _applies(reading, self.max_id) or reading.recorded_at < window_start(now):
            return None
        stamp = _stamp(bucket_of(reading.recorded_at))
        entry = self.buckets.get(stamp)
        value = reading.temperature
        if entry is None:
            self.buckets[stamp] = [milli(value), 1, value, value]
        else:
            entry[0] += milli(value)
            entry[1] += 1
            entry[2], entry[3] = min(entry[2], value), max(entry[3], value)
        self.max_id = reading.id
        return stamp

    def slide(self, now: datetime) -> None:
        first = _stamp(window_start(now))
        self.buckets = {stamp: entry for stamp, entry in self.buckets.items() if stamp >= first}

    def current(self, latest_reading_id: int | None, temp_min: float, temp_max: float) -> bool:
        """Whether the state holds the unit's newest reading and has its range: then the trend
        can be rebuilt from it alone."""
        return (self.max_id, self.temp_min, self.temp_max) == (latest_reading_id, temp_min, temp_max)

    def points(self) -> list[dict[str, object]]:
        """The trend as the API answers it: mean, min, max and whether the bucket left the range."""
        return [self.point(stamp) for stamp in sorted(self.buckets)]

    def point(self, stamp: int) -> dict[str, object]:
        total, count, low, high = self.buckets[stamp]
        return {
            "timestamp": iso(datetime.fromtimestamp(stamp, UTC)),
            "temperature": mean(total, count),
            "min": round(low, 2),
            "max": round(high, 2),
            "alarmState": "too_hot" if high > self.temp_max else "too_cold" if low < self.temp_min else "normal",
        }

    def points_since(self, before: list[int], points: list[dict[str, object]], changed: int | None) -> list:
        """`points()` after a change, reusing `points` (those of the buckets `before` the change,
        in order) for every bucket but the `changed` one: formatting 96 points was most of an
        in-place update's time. Recomputed whole when `points` is not one per bucket."""
        if len(points) != len(before):
            return self.points()
        kept = dict(zip(before, points, strict=True))
        return [kept[s] if s in kept and s != changed else self.point(s) for s in sorted(self.buckets)]

    def dumps(self) -> bytes:
        return orjson.dumps([self.temp_min, self.temp_max, self.max_id, sorted(self.buckets.items())])

    @classmethod
    def loads(cls, raw: bytes) -> TrendState:
        temp_min, temp_max, max_id, buckets = orjson.loads(raw)
        return cls(temp_min, temp_max, max_id, {int(stamp): entry for stamp, entry in buckets})


@dataclass
class ComplianceState:
    """An organization's buckets: {bucket start: [readings in range, readings]}, and per unit the
    highest reading id counted."""

    max_ids: dict[str, int] = field(default_factory=dict)
    buckets: dict[int, list] = field(default_factory=dict)

    def add(self, reading: Reading, temp_min: float, temp_max: float, now: datetime) -> bool:
        if not _applies(reading, self.max_ids.get(reading.unit_id, 0)) or reading.recorded_at < window_start(now):
            return False
        entry = self.buckets.setdefault(_stamp(bucket_of(reading.recorded_at)), [0, 0])
        entry[0] += temp_min <= reading.temperature <= temp_max
        entry[1] += 1
        self.max_ids[reading.unit_id] = reading.id
        return True

    def slide(self, now: datetime) -> None:
        first = _stamp(window_start(now))
        self.buckets = {stamp: entry for stamp, entry in self.buckets.items() if stamp >= first}

    def current(self, units: Iterable[tuple[object, int | None, datetime | None]], now: datetime) -> bool:
        """Whether the state holds the newest reading of every unit (id, newest reading id, newest
        reading's time) that has one in the window: then the compliance needs no readings."""
        start = window_start(now)
        return all(
            self.max_ids.get(str(unit_id)) == latest
            for unit_id, latest, last_at in units
            if latest is not None and (last_at is None or last_at >= start)
        )

    def percentage(self) -> float | None:
        in_range = sum(entry[0] for entry in self.buckets.values())
        total = sum(entry[1] for entry in self.buckets.values())
        return round(100.0 * in_range / total, 2) if total else None

    def dumps(self) -> bytes:
        return orjson.dumps([self.max_ids, sorted(self.buckets.items())])

    @classmethod
    def loads(cls, raw: bytes) -> ComplianceState:
        max_ids, buckets = orjson.loads(raw)
        return cls(max_ids, {int(stamp): entry for stamp, entry in buckets})
