"""Scenario 4, invalidation cost versus unrelated keys, and stampede recomputes (in-process).

For 0, 100k and 1M unrelated keys in the cache db (they look like other organizations' trend
keys, the worst case for a SCAN MATCH), one organization's keys are cached (4 org-wide + one
trend key per unit) and then invalidated, many times:
  index   stats.cache.invalidate_org(org): the per-org key index, the hot path
  sweep   invalidate_org(org, sweep=True): index plus delete_pattern over the keyspace
Medians of repeated calls. Then the stampede: right after an invalidation, 50 threads call
stats.services.org_stats_json at once (a barrier); dashboard_cache_recompute_total{stats} counts
how many of them computed from PostgreSQL (single flight: 1).
Runs in this process with Django set up on the bench's settings (its own Redis dbs and database).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid

from bench import common, env

STAMPEDE_THREADS = 50
UNRELATED_BATCH = 10_000
FAKE_ORGS = 1000


def _setup_django() -> None:
    os.environ.update(env.server_env())
    os.environ["DJANGO_SETTINGS_MODULE"] = "dashboard_project.settings"
    import django

    django.setup()


def load_unrelated(count: int) -> float:
    """Fill the (flushed) cache db with `count` keys of other organizations; seconds taken."""
    client = common.redis_cache()
    client.flushdb()
    started = time.perf_counter()
    orgs = [str(uuid.uuid4()) for _ in range(FAKE_ORGS)]
    value = b"x" * 100
    pipe = client.pipeline(transaction=False)
    for first in range(0, count, UNRELATED_BATCH):
        batch = {
            f"dashboard:temperature:trends:org:{orgs[i % FAKE_ORGS]}:unit:{i:012d}": value
            for i in range(first, min(count, first + UNRELATED_BATCH))
        }
        pipe.mset(batch)
        if len(pipe) >= 10:
            pipe.execute()
    pipe.execute()
    if client.dbsize() < count:
        raise RuntimeError(f"loaded {client.dbsize()} keys, wanted {count}")
    return time.perf_counter() - started


def _org_values(org: common.Org) -> dict[str, bytes]:
    """Compute the organization's cacheable values once (real bytes, real keys)."""
    from stats import services
    from stats.cache import QueryType, cache_key

    org_id = uuid.UUID(org.id)
    values = {
        cache_key(QueryType.STATS, org_id): services.query_json("stats", org_id=org_id),
        cache_key(QueryType.UNITS_STATUS, org_id): services.query_json("units:status", org_id=org_id),
        cache_key(QueryType.ALERTS_COUNT, org_id): services.query_json("alerts:count", org_id=org_id),
        cache_key(QueryType.DEVICES_ONLINE, org_id): services.query_json("devices:online", org_id=org_id),
    }
    for unit in org.units:
        unit_id = uuid.UUID(unit)
        key = cache_key(QueryType.TEMPERATURE_TRENDS, org_id, unit_id)
        values[key] = services.query_json("temperature:trends", org_id=org_id, unit_id=unit_id)
    return values


def _time_invalidations(org: common.Org, values: dict[str, bytes], *, sweep: bool, repeats: int) -> dict:
    from stats import cache

    durations, deleted = [], []
    for _ in range(repeats):
        for key, value in values.items():
            cache.set(key, value)
        started = time.perf_counter()
        count = cache.invalidate_org(org.id, sweep=sweep)
        durations.append(time.perf_counter() - started)
        deleted.append(count)
    if any(count is None or count < len(values) for count in deleted):
        raise RuntimeError(f"invalidation failed or missed keys: {deleted}")
    ordered = sorted(durations)
    return {
        "repeats": repeats,
        "median_ms": round(statistics.median(durations) * 1000, 3),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 3),
        "keysDeletedPerCall": deleted[0],
    }


def _recomputes() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("dashboard_cache_recompute_total", {"query_type": "stats"}) or 0.0


def stampede(org: common.Org, rounds: int) -> dict:
    from django.db import connections

    from stats import cache, services

    org_id = uuid.UUID(org.id)
    per_round, distinct_bodies, seconds = [], [], []
    failed_invalidations = 0
    while len(per_round) < rounds:
        services.query_json("stats", org_id=org_id)  # cached
        if cache.invalidate_org(org_id) is None:
            # Redis did not answer in time (counted in dashboard_cache_error_total): no stampede follows.
            failed_invalidations += 1
            if failed_invalidations > rounds:
                raise RuntimeError("invalidate_org keeps failing")
            time.sleep(0.5)
            continue
        barrier = threading.Barrier(STAMPEDE_THREADS)
        bodies: list[bytes] = []

        def reader(barrier: threading.Barrier = barrier, bodies: list[bytes] = bodies) -> None:
            try:
                barrier.wait()
                bodies.append(services.query_json("stats", org_id=org_id))
            finally:
                connections.close_all()

        before = _recomputes()
        started = time.perf_counter()
        threads = [threading.Thread(target=reader) for _ in range(STAMPEDE_THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds.append(time.perf_counter() - started)
        per_round.append(_recomputes() - before)
        distinct_bodies.append(len(set(bodies)))
        if len(bodies) != STAMPEDE_THREADS:
            raise RuntimeError(f"only {len(bodies)} of {STAMPEDE_THREADS} readers answered")
    return {
        "threads": STAMPEDE_THREADS,
        "rounds": rounds,
        "recomputesPerInvalidation": {"mean": statistics.mean(per_round), "max": max(per_round)},
        "distinctBodiesPerRound": max(distinct_bodies),
        "roundMedian_ms": round(statistics.median(seconds) * 1000, 1),
        "failedInvalidations": failed_invalidations,
    }


def run(*, profile: dict, tool: str, workers: int) -> dict[str, object]:
    _setup_django()
    org = common.load_orgs()[0]
    common.flush_cache_db()
    values = _org_values(org)
    levels = []
    stampede_result = None
    for count in profile["unrelatedKeys"]:
        load_seconds = load_unrelated(count)
        index = _time_invalidations(org, values, sweep=False, repeats=profile["invalidationRepeats"])
        sweep = _time_invalidations(org, values, sweep=True, repeats=max(5, profile["invalidationRepeats"] // 4))
        levels.append({"unrelatedKeys": count, "loadSeconds": round(load_seconds, 1), "index": index, "sweep": sweep})
        print(
            f"   {count:>9,} unrelated keys: index {index['median_ms']:.3f} ms, sweep {sweep['median_ms']:.1f} ms",
            flush=True,
        )
        if count == max(profile["unrelatedKeys"]):
            stampede_result = stampede(org, profile["stampedeRounds"])
    common.flush_cache_db()
    none, most = levels[0], levels[-1]
    common.table(
        f"invalidation of one org ({len(values)} keys cached) vs unrelated keys in the cache db (medians)",
        ["unrelated keys", "index ms", "index p90 ms", "sweep ms", "sweep p90 ms", "index x none", "sweep x none"],
        [
            [f"{lv['unrelatedKeys']:,}", lv["index"]["median_ms"], lv["index"]["p90_ms"], lv["sweep"]["median_ms"],
             lv["sweep"]["p90_ms"], common.ratio(lv["index"]["median_ms"], none["index"]["median_ms"]),
             common.ratio(lv["sweep"]["median_ms"], none["sweep"]["median_ms"])]
            for lv in levels
        ],
    )  # fmt: skip
    common.table(
        f"stampede: {STAMPEDE_THREADS} threads read /stats right after an invalidation, "
        f"{stampede_result['rounds']} rounds, with {most['unrelatedKeys']:,} unrelated keys",
        ["recomputes/invalidation (mean)", "max", "distinct bodies per round", "round median ms"],
        [[stampede_result["recomputesPerInvalidation"]["mean"], stampede_result["recomputesPerInvalidation"]["max"],
          stampede_result["distinctBodiesPerRound"], stampede_result["roundMedian_ms"]]],
    )  # fmt: skip
    ratio = common.ratio(most["index"]["median_ms"], none["index"]["median_ms"])
    summary = {
        "org": org.id,
        "keysCached": len(values),
        "levels": levels,
        "stampede": stampede_result,
        "indexWithMostKeysOverNone": ratio,
        "targets": {
            "invalidationWithMostKeysWithin2x": (ratio or 99) <= 2.0,
            "stampedeRecomputes==1": stampede_result["recomputesPerInvalidation"]["max"] <= 1,
        },
    }
    common.save("invalidation", summary)
    return summary
