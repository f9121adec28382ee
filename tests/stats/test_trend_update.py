"""A trend updated in place reuses the points of the buckets a reading did not change: the bytes
must still be those of the whole trend formatted again from the updated state."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from stats.services import json_bytes
from stats.updaters import trend_add
from stats.windows import BUCKET, Reading, TrendState, bucket_of, window_start


def _formatted(state: TrendState, unit_id: str) -> bytes:
    return json_bytes({"unitId": unit_id, "points": state.points()})


def test_a_trend_updated_reading_by_reading_is_byte_for_byte_the_trend_formatted_whole():
    rng = random.Random(7)
    unit_id = "5b8f8f8e-9d3c-4c51-8d7c-3f3e7d8c0a11"
    now = bucket_of(datetime(2026, 12, 7, 4, 0, tzinfo=UTC)) + timedelta(minutes=3)
    state = TrendState(temp_min=2.0, temp_max=8.0, max_id=100)
    for stamp in range(int(window_start(now).timestamp()), int(now.timestamp()), int(BUCKET.total_seconds())):
        state.buckets[stamp] = [rng.randint(2000, 8000) * 4, 4, 1.5, 8.5]
    value, raw = _formatted(state, unit_id), state.dumps()
    reading_id, updates = 100, {"reused": 0, "changed": 0}
    for _ in range(300):
        # Minutes apart, so buckets fill, new ones open and old ones leave the window.
        now += timedelta(seconds=rng.randint(20, 400))
        reading_id += 1
        recorded = now - timedelta(seconds=rng.choice([0, 0, 0, 30, 1200]))  # some late, into an older bucket
        reading = Reading(reading_id, unit_id, round(rng.uniform(-1.0, 11.0), 3), recorded, reading_id - 1)
        before = TrendState.loads(raw)
        value, raw = trend_add(value, raw, reading, 2.0, 8.0, now)
        after = TrendState.loads(raw)
        assert value == _formatted(after, unit_id)
        assert len(after.buckets) <= 96
        updates["changed"] += before.buckets != after.buckets
        updates["reused"] += len(set(before.buckets) & set(after.buckets)) > 1
    assert updates["changed"] > 250 and updates["reused"] > 250  # the reuse was exercised, slides too
