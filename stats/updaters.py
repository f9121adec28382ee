"""How a reading updates cached values in place (the catalogue's `Effect.UPDATE`): from the state
stored beside each value (`stats.windows`), with the arithmetic the database computation uses,
so the updated value is byte for byte what a recomputation would give."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import orjson

from .cache import StaleState
from .encoding import json_bytes
from .windows import ComplianceState, MissedUpdate, Reading, TrendState, bucket_of, iso, window_start


def _add(add: Callable[[], object]) -> object:
    try:
        return add()
    except MissedUpdate as exc:
        raise StaleState(str(exc)) from exc


def trend_add(value: bytes | None, state: bytes, reading: Reading, temp_min: float, temp_max: float, now: datetime):
    """A unit's trend with one more reading (and buckets past the window dropped); rebuilt from
    its state alone when the value expired (the trend is the unit's id and its points)."""
    trend = TrendState.loads(state)
    before = sorted(trend.buckets)
    changed = _add(lambda: trend.add(reading, now))
    trend.slide(now)
    if value is None:
        data = {"unitId": reading.unit_id, "points": trend.points()}
    else:
        data = orjson.loads(value)
        data["points"] = trend.points_since(before, data["points"], changed)
    return json_bytes(data), trend.dumps()


def trend_patch(state: bytes, reading: Reading, now: datetime) -> dict[str, object]:
    """What a reading's event carries for the page to update its copy of the unit's trend: the
    reading's bucket as the trend now has it (None when the reading is outside the window), and
    where the window now starts (the page drops the points before it)."""
    trend = TrendState.loads(state)
    stamp = int(bucket_of(reading.recorded_at).timestamp())
    return {
        "point": trend.point(stamp) if stamp in trend.buckets else None,
        "windowStart": iso(window_start(now)),
    }


def compliance_add(
    value: bytes | None, state: bytes, reading: Reading, temp_min: float, temp_max: float, now: datetime
):
    """An organization's stats with one more reading in its 24 h compliance; when the stats expired
    (or are to be rebuilt), the compliance state alone: the state holds no counts."""
    compliance = ComplianceState.loads(state)
    _add(lambda: compliance.add(reading, temp_min, temp_max, now))
    compliance.slide(now)
    if value is None:
        return None, compliance.dumps()
    data = orjson.loads(value)
    data["compliancePercentage"] = compliance.percentage()
    data["lastUpdated"] = iso(now)
    return json_bytes(data), compliance.dumps()


def compliance_patch(state: bytes, reading: Reading, now: datetime) -> dict[str, object]:
    """What a reading's event carries for the page to update its copy of the stats: the two
    fields `compliance_add` changed, as it left them."""
    return {"compliancePercentage": ComplianceState.loads(state).percentage(), "lastUpdated": iso(now)}
