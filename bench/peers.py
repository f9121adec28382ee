"""Scenario peers: the realistic day once per contender, the dashboard cache beside what a user
would otherwise pick, every contender at a 60 s TTL.

    .venv/bin/python -m bench --scenarios peers            # after `make bench`'s install (.[bench])
    .venv/bin/python -m bench.peers --only ours,cachalot   # a subset, on the existing dataset

Contenders (each runs the whole day in servers of its own, started as the realistic day starts
them: dashboards, webhooks and WebSockets, plus the stale-answer check's two servers):
  ours      the project as it stands, CACHE_TTL_SECONDS=60;
  ours-no-updates  the same with readings' in-place updates switched off (the switch the
            exactness test uses): the stats then keep their 24 h compliance until the TTL, as
            before the windowed states, which shows the stale-answer check catching a lag;
  card      the cache as first specified (bench/card.py): cache-aside, every event deletes the
            organization's keys with delete_pattern, no stale-set guard, no single flight, no
            fast path, no tracked copies;
  cachalot  django-cachalot (table-level invalidation of ORM query results), our cache off;
  cacheops  django-cacheops (invalidation by the conditions a query filters on), our cache off;
  off       no cache at all.
Reported per contender: hit rate (ours and card: dashboard_cache_hit/miss_total; the peers:
their own lookups, bench/peer_settings/counting.py; authorization lookups excluded in both),
database queries per dashboard load, dashboard-load P99, the uplink POST's answer time (P50,
P99), and stale answers (bench/freshness.py) to trend and stats requests sent right after an
uplink was answered. A peer that cannot run here gets a row saying why instead of figures.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
import time
from dataclasses import dataclass

from bench import common, realistic

TTL = str(realistic.TTL_SECONDS)


@dataclass(frozen=True)
class Contender:
    name: str
    flags: dict[str, str]
    hit_source: str
    distribution: str | None = None  # the peer's package, None for the project's own code


CONTENDERS = (
    Contender("ours", {"CACHE_TTL_SECONDS": TTL}, "dashboard_cache_hit/miss_total"),
    Contender(
        "ours-no-updates",
        {
            "CACHE_TTL_SECONDS": TTL,
            "DJANGO_SETTINGS_MODULE": "bench.variant_settings",
            "BENCH_VARIANT": "no-in-place-updates",
        },
        "dashboard_cache_hit/miss_total",
    ),  # fmt: skip
    Contender(
        "card",
        {"CACHE_TTL_SECONDS": TTL, "DJANGO_SETTINGS_MODULE": "bench.variant_settings", "BENCH_VARIANT": "card"},
        "dashboard_cache_hit/miss_total",
    ),
    Contender(
        "cachalot",
        {"CACHE_ENABLED": "0", "CACHE_TTL_SECONDS": TTL, "DJANGO_SETTINGS_MODULE": "bench.peer_settings.cachalot"},
        "its query lookups (counted around cachalot's lookup)",
        "django-cachalot",
    ),
    Contender(
        "cacheops",
        {"CACHE_ENABLED": "0", "CACHE_TTL_SECONDS": TTL, "DJANGO_SETTINGS_MODULE": "bench.peer_settings.cacheops"},
        "its query lookups (cacheops' cache_read signal)",
        "django-cacheops",
    ),
    Contender("off", {"CACHE_ENABLED": "0"}, "-"),
)


def _version(contender: Contender) -> str | None:
    if contender.distribution is None:
        return None
    try:
        return importlib.metadata.version(contender.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _rate(hits: float, misses: float) -> float | None:
    return round(hits / (hits + misses), 4) if hits + misses else None


def _hit_rate(run: dict) -> float | None:
    reads = run.get("peerCacheReads")
    if reads is None:
        return run["hitRate"]
    return _rate(sum(r["hit"] for r in reads.values()), sum(r["miss"] for r in reads.values()))


def _hit_rate_by_query_type(run: dict) -> dict[str, float | None]:
    reads = run.get("peerCacheReads")
    if reads is None:
        return run["hitRateByQueryType"]
    return {query_type: _rate(r["hit"], r["miss"]) for query_type, r in sorted(reads.items())}


def _stale(run: dict, kind: str) -> str:
    counts = run["freshness"][kind]
    return f"{counts['stale']}/{counts['compared']}"


def _one(contender: Contender, *, profile: dict, workers: int, orgs: list[common.Org], f_cnt_base: int) -> dict:
    if contender.distribution is not None and _version(contender) is None:
        reason = f"{contender.distribution} is not installed (pip install -e '.[bench]', or make bench)"
        return {"name": contender.name, "skipped": reason}
    print(f"   {contender.name}: running the day", flush=True)
    try:
        run = realistic.day(flags=contender.flags, profile=profile, workers=workers, orgs=orgs,
                            f_cnt_base=f_cnt_base, check_freshness=True)  # fmt: skip
    except RuntimeError as exc:
        # A peer that does not run with this stack: its servers' own account, not a figure.
        account = str(exc).strip()
        errors = [line for line in account.splitlines() if re.match(r"[\w.]*(Error|Exception|Configured)\b", line)]
        return {"name": contender.name, "failed": (errors or account.splitlines() or ["?"])[-1], "log": account}
    return {"name": contender.name, "version": _version(contender), "hitRateSource": contender.hit_source, **run}


COLUMNS = ["contender", "hit rate", "db q/load", "load p99 ms", "uplink p50 ms", "uplink p99 ms", "stale trends",
           "stale stats", "ambiguous", "loads", "errors"]  # fmt: skip


def rows(runs: list[dict]) -> list[list[object]]:
    """The table's rows, one per measured contender (also for bench/report.py)."""
    return [
        [r["name"], _hit_rate(r), r["dbQueriesPerLoad"], r["loadLatency"]["p99_ms"], r["uplinks"]["p50_ms"],
         r["uplinks"]["p99_ms"], _stale(r, "trend"), _stale(r, "stats"),
         r["freshness"]["trend"]["ambiguous"] + r["freshness"]["stats"]["ambiguous"], r["dashboardLoads"],
         sum(r["loadErrors"].values()) + sum(r["freshness"][k]["errors"] for k in ("trend", "stats"))]
        for r in runs if "loadLatency" in r
    ]  # fmt: skip


def notes(runs: list[dict]) -> list[str]:
    """What the table leaves out: why a contender has no row, where its hit rate comes from,
    its hit rate by query type, which stats fields were stale."""
    lines = []
    for r in runs:
        if "loadLatency" not in r:
            lines.append(f"{r['name']}: not measured: {r.get('skipped') or r.get('failed')}")
            continue
        version = f" {r['version']}," if r["version"] else ""
        fields = r["freshness"]["stats"]["staleFields"] or "{}"
        lines.append(
            f"{r['name']}:{version} hit rate from {r['hitRateSource']}; stale stats by field {fields}; "
            f"uplink statuses {r['uplinkStatuses']}; invalidations {r['invalidations']:,.0f}, "
            f"state changes {r['stateChanges']:,.0f}"
        )
        stale_at = {k: r["freshness"][k].get("staleAt") for k in ("trend", "stats") if r["freshness"][k].get("staleAt")}
        if stale_at:
            lines.append(f"{r['name']}: stale answers at (UTC) {stale_at}")
        if _hit_rate(r) is not None:
            lines.append(f"{r['name']}: hit rate by query type {_hit_rate_by_query_type(r)}")
    return lines


def title(profile: dict, runs: list[dict]) -> str:
    measured = [r for r in runs if "loadLatency" in r]
    rate = measured[0]["uplinkRatePerSecond"] if measured else "-"
    return (
        f"peers: the realistic day per contender ({profile['realisticClients']} dashboards polling every "
        f"{profile['pollSeconds']}s and refetching on events, uplinks at {rate}/s, {profile['realisticSeconds']}s "
        f"measured, TTL {TTL}s); stale: answers older than the uplink they follow / answers compared"
    )


def run(*, profile: dict, tool: str, workers: int, only: list[str] | None = None) -> dict[str, object]:
    orgs = common.load_orgs()
    chosen = [c for c in CONTENDERS if not only or c.name in only]
    base = int(time.time())
    runs = [
        _one(c, profile=profile, workers=workers, orgs=orgs, f_cnt_base=base + 10_000_000 * i)
        for i, c in enumerate(chosen)
    ]
    common.table(title(profile, runs), COLUMNS, rows(runs))
    for line in notes(runs):
        print(f"   {line}", flush=True)
    summary = {"profile": profile, "orgs": len(orgs), "ttlSeconds": int(TTL), "runs": runs}
    common.save("peers", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    from bench.__main__ import PROFILES

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--only", default="", help=f"comma-separated, from {[c.name for c in CONTENDERS]}")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(only) - {c.name for c in CONTENDERS}
    if unknown:
        parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    run(profile=dict(PROFILES[args.profile], name=args.profile), tool="", workers=args.workers, only=only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
