"""Invalidating an organization costs the same with 100k unrelated keys.

The structural reason is asserted first (no SCAN on the hot path); then the acceptance's
measurement: medians of repeated calls, both conditions measured in this same run.
"""

from __future__ import annotations

import statistics
import time
import uuid

import pytest

from stats import cache
from stats.cache import QueryType, cache_key

UNRELATED = 100_000


def _fill_org(org_id: uuid.UUID, units: list[uuid.UUID]) -> set[str]:
    keys = {cache_key(q, org_id) for q in QueryType if q is not QueryType.TEMPERATURE_TRENDS}
    keys |= {cache_key(QueryType.TEMPERATURE_TRENDS, org_id, u) for u in units}
    keys |= {cache_key(QueryType.ALERTS_COUNT, org_id, u) for u in units}
    for key in keys:
        assert cache.set(key, b'{"x":1}')
    return keys


def _load_unrelated(redis_client, count: int) -> None:
    pipe = redis_client.pipeline(transaction=False)
    for start in range(0, count, 10_000):
        pipe.mset({f"dashboard:stats:org:{uuid.uuid4()}:{i}": b"1" for i in range(start, start + 10_000)})
    pipe.execute()


def _scan_calls(redis_client) -> int:
    return int(redis_client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))


def _median_invalidation_ms(org_id, units, rounds: int = 40) -> float:
    timings = []
    for _ in range(rounds):
        keys = _fill_org(org_id, units)
        started = time.perf_counter()
        assert cache.invalidate_org(org_id) == len(keys)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


@pytest.fixture
def org_with_units() -> tuple[uuid.UUID, list[uuid.UUID]]:
    return uuid.uuid4(), [uuid.uuid4() for _ in range(25)]


def test_invalidation_never_scans_the_keyspace(redis_client, org_with_units):
    org_id, units = org_with_units
    keys = _fill_org(org_id, units)
    scans = _scan_calls(redis_client)
    assert cache.invalidate_org(org_id) == len(keys)
    assert cache.invalidate_keys([cache_key(QueryType.STATS, org_id)]) == 0
    assert _scan_calls(redis_client) == scans
    assert redis_client.keys(f"dashboard:*{org_id}*") == []


def test_invalidating_an_org_among_100k_unrelated_keys_costs_at_most_twice_as_much(redis_client, org_with_units):
    org_id, units = org_with_units
    empty = _median_invalidation_ms(org_id, units)
    _load_unrelated(redis_client, UNRELATED)
    assert redis_client.dbsize() >= UNRELATED
    crowded = _median_invalidation_ms(org_id, units)
    assert crowded <= 2 * max(empty, 0.05), (empty, crowded)  # 0.05 ms floor: clock resolution, not cost
    keys = _fill_org(org_id, units)
    assert cache.invalidate_org(org_id) == len(keys)
    assert redis_client.keys(f"dashboard:*{org_id}*") == []


def test_a_burst_of_invalidations_of_one_org_pays_the_delete_once(redis_client, org_with_units):
    org_id, units = org_with_units
    keys = _fill_org(org_id, units)
    deleted = [cache.invalidate_org(org_id) for _ in range(10)]
    assert deleted == [len(keys)] + [0] * 9
