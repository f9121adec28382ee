"""Scenario 2, a realistic day: dashboards polling while uplinks arrive, cache on versus cache off.

Two gunicorn servers share PostgreSQL and Redis: `dash` serves the dashboard clients, `ingest`
takes the TTN webhooks (as two instances behind a load balancer would), and a daphne (`ws`)
holds the dashboards' WebSockets, on whose events they refetch. Splitting them keeps the
webhook's own queries out of the dashboard server's django_db_execute_total, so
"DB queries per dashboard load" counts only what the dashboards cost. Both figures come from the
dashboard server's /metrics deltas over the measured window:
  hit rate           dashboard_cache_hit_total / (hit + miss), authorization lookups excluded
  queries per load   django_db_execute_total / (dashboard requests / 5), refetches included
The clients (bench/dayload.py) run in their own process. `day()` is one such run for any server
settings; the peers scenario (bench/peers.py) runs it once per contender, with the stale-answer
check (bench/freshness.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench import common, cpu, dataset, env, servers
from bench.servers import FLOOR_WSGI, PROJECT_ASGI, PROJECT_WSGI

ENDPOINTS_PER_LOAD = 5
TTL_SECONDS = 60  # CACHE_TTL_SECONDS's default
LONG_TTL_SECONDS = servers.PRODUCTION_TTL_SECONDS
PEER_READS = "bench_peer_cache_reads_total"
# The machine's busy fraction over the floor's day at and above which the day is over the machine's
# capacity: with nothing behind the loads, the floor's latencies are then queueing for a core.
SATURATED = 0.9


def _settle() -> None:
    """Every unit in range and every device online before a run, the cache empty.

    The dataset has units in excursion, alarm and restoring states; the preroll's in-range
    readings move them to `restoring`, and RESTORE_STABLE_SECONDS later (10 min) to `ok`: a
    burst of a thousand unitUpdates that would land in whichever run is measuring then. Runs
    start from the same settled state instead; the simulator's own excursions still run."""
    from django.db import connection

    dataset.setup_django()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE stats_unit SET status = 'ok', excursion_started_at = NULL, restoring_since = NULL")
        cursor.execute("UPDATE stats_device SET online = TRUE")
    connection.close()
    common.flush_cache_db()


def _one_run(
    *, cache: bool, profile: dict, workers: int, orgs: list[common.Org], f_cnt_base: int, ttl: int = TTL_SECONDS
) -> dict:
    flags = {"CACHE_TTL_SECONDS": str(ttl)} if cache else {"CACHE_ENABLED": "0"}
    result = day(flags=flags, profile=profile, workers=workers, orgs=orgs, f_cnt_base=f_cnt_base)
    return {"cache": cache, "ttlSeconds": ttl if cache else None, **result}


@contextmanager
def _freshness_servers(check: bool, flags: dict[str, str]) -> Iterator[list[str]]:
    """For the stale-answer check: the dayload arguments, and their two servers while it runs."""
    if not check:
        yield []
        return
    with (
        servers.serve("check", "gunicorn", PROJECT_WSGI, workers=1, **flags) as checked,
        servers.serve("oracle", "gunicorn", PROJECT_WSGI, workers=1, CACHE_ENABLED="0") as oracle,
    ):
        yield ["--check-port", str(checked.port), "--oracle-port", str(oracle.port)]


def _dashboard_keys() -> int:
    """How many dashboard values are cached now (the keys the day's dashboards keep warm)."""
    return sum(1 for _ in common.redis_cache().scan_iter(match="dashboard:*", count=1000))


def day(
    *, flags: dict[str, str], profile: dict, workers: int, orgs: list[common.Org], f_cnt_base: int,
    check_freshness: bool = False, dash_app: str = PROJECT_WSGI,
) -> dict:  # fmt: skip
    """One measured day with every server started with the environment `flags` (a cache setting,
    a settings module); `check_freshness` adds the stale-answer check (bench/freshness.py).
    `dash_app=FLOOR_WSGI` answers the dashboards' requests with the floor (constant bytes, no
    middleware): the same day, clients, uplinks and events, with nothing behind the loads."""
    dataset.vacuum_updated()  # each run starts from the same table state
    _settle()
    units = sum(len(o.units) for o in orgs)
    uplink_rate = units / 60 * profile["uplinkScale"]
    warmup = max(5.0, profile["realisticSeconds"] / 6)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        handle.write(common.orgs_to_json(orgs))
    with (
        servers.serve(
            "dash",
            "gunicorn",
            dash_app,
            workers=workers,
            ready_path="/floor" if dash_app == FLOOR_WSGI else "/health",
            **flags,
        ) as dash,
        servers.serve("ingest", "gunicorn", PROJECT_WSGI, workers=workers, **flags) as ingest,
        servers.serve("ws", "daphne", PROJECT_ASGI, **flags) as ws,
        _freshness_servers(check_freshness, flags) as check_args,
    ):
        cookie = servers.login(ws)  # the dashboard server may be the floor, which has no login
        command = [
            sys.executable, "-m", "bench.dayload", "--orgs-file", handle.name,
            "--dash-port", str(dash.port), "--ingest-port", str(ingest.port), "--ws-port", str(ws.port),
            "--cookie", cookie,
            "--clients", str(profile["realisticClients"]), "--poll", str(profile["pollSeconds"]),
            "--duration", str(profile["realisticSeconds"]), "--warmup", str(warmup),
            "--uplink-rate", f"{uplink_rate:.3f}", "--f-cnt-base", str(f_cnt_base), *check_args,
            # The floor's cache holds no trends for the ingest to patch: its pages ask what ours do
            # when every patch applies.
            *(["--patched-always"] if dash_app == FLOOR_WSGI else []),
        ]  # fmt: skip
        process = subprocess.Popen(command, cwd=env.ROOT, stdout=subprocess.PIPE, text=True)
        if process.stdout.readline().strip() != "PREROLL_DONE":
            raise RuntimeError("bench.dayload failed during its preroll")
        time.sleep(warmup)
        before, ingest_before = servers.metrics(dash), servers.metrics(ingest)
        cpu_before, window_start = cpu.snapshot(), time.monotonic()
        try:
            out, _ = process.communicate(timeout=profile["realisticSeconds"] + warmup + 120)
        except subprocess.TimeoutExpired:
            process.kill()
            raise RuntimeError("bench.dayload did not finish within two minutes of the day's end") from None
        cpu_after, window = cpu.snapshot(), time.monotonic() - window_start
        after, ingest_after = servers.metrics(dash), servers.metrics(ingest)
        named = {dash.process.pid: "dash", ingest.process.pid: "ingest", ws.process.pid: "ws"}
        spent = cpu.usage(cpu_before, cpu_after, named)
        cached_keys = _dashboard_keys()
    if process.returncode:
        raise RuntimeError(f"bench.dayload failed with exit code {process.returncode}")
    clients = json.loads(out)
    # The clients' process has exited by now: it measured its own CPU over the day.
    spent["load generator"] = clients.pop("cpuSeconds") * window / profile["realisticSeconds"]
    cpu_used = cpu.cores(spent, window)
    # A server's CPU per unit of its work, comparable between days that got through different
    # amounts of it (the floor's too): the dashboard server's per request answered (loads and
    # refetches), the ingest server's per uplink answered.
    seconds = profile["realisticSeconds"]
    done = {"dash": clients["dashRequestsAnswered"], "ingest": clients["uplinks"]["requests"]}
    cpu_ms = {name: round(spent.get(name, 0.0) / window * seconds * 1000 / n, 2) for name, n in done.items() if n}
    # The dashboard server's fast-path key reads (session, principal, value): served from the
    # worker's tracked copy, or read from Redis (a round trip; a value changed since, mostly).
    copies = {
        o: servers.delta(after, before, f'dashboard_cache_near_total{{outcome="{o}"}}') for o in ("hit", "fetched")
    }
    hits = servers.dashboard_delta(after, before, "dashboard_cache_hit_total")
    misses = servers.dashboard_delta(after, before, "dashboard_cache_miss_total")
    # One /metrics request (the "after" snapshot) is among the counted requests.
    requests = servers.delta(after, before, "django_http_requests_total_by_view_transport_method_total") - 1
    loads = requests / ENDPOINTS_PER_LOAD
    queries = servers.delta(after, before, "django_db_execute_total")
    # The ingest server's queries per uplink: the webhook's own, plus the trend refreshes that a
    # reading of a watched unit costs there instead of on the next dashboard poll.
    ingest_queries = servers.delta(ingest_after, ingest_before, "django_db_execute_total")
    ingest_requests = (
        servers.delta(ingest_after, ingest_before, "django_http_requests_total_by_view_transport_method_total") - 1
    )
    per_type = {}
    for qt in ("stats", "units:status", "alerts:count", "devices:online", "temperature:trends"):
        h = servers.delta(after, before, f'dashboard_cache_hit_total{{query_type="{qt}"}}')
        m = servers.delta(after, before, f'dashboard_cache_miss_total{{query_type="{qt}"}}')
        per_type[qt] = round(h / (h + m), 4) if h + m else None

    def per_minute(family: str) -> float:
        """Both servers' increase of a counter family, per minute of the day."""
        pairs = ((after, before), (ingest_after, ingest_before))
        total = sum(servers.delta(a, b, name) for a, b in pairs for name in a if name.startswith(family + "{"))
        return round(total / (profile["realisticSeconds"] / 60), 1)

    result = {
        "uplinkRatePerSecond": round(uplink_rate, 2),
        "hitRate": round(hits / (hits + misses), 4) if hits + misses else None,
        "hitRateByQueryType": per_type,
        "dashboardLoads": round(loads, 1),
        "dbQueriesPerLoad": round(queries / loads, 3) if loads else None,
        "ingestDbQueriesPerUplink": round(ingest_queries / ingest_requests, 2) if ingest_requests > 0 else None,
        # Every computation from the database, on either server: misses, refreshes ahead, refreshes
        # after an event, in-place updates that found no state.
        "recomputesPerMinute": per_minute("dashboard_cache_recompute_total"),
        # Expired values rebuilt from their kept state (one check query each, no aggregation).
        "rebuiltPerMinute": per_minute("dashboard_cache_rebuilt_total"),
        "recomputesByQueryType": {
            name.split('"')[1]: servers.delta(after, before, name) + servers.delta(ingest_after, ingest_before, name)
            for name in after
            if name.startswith("dashboard_cache_recompute_total{")
        },
        "cachedKeys": cached_keys,
        "trackedCopies": {
            **copies,
            "fetchedPerRequest": round(copies["fetched"] / requests, 2) if requests > 0 else None,
        },
        # Cores each process used over the measured window, and how busy the machine was.
        "cpuCores": cpu_used,
        "cpuMs": {"dashPerRequest": cpu_ms.get("dash"), "ingestPerUplink": cpu_ms.get("ingest")},
        "trendRefreshes": servers.delta(
            ingest_after, ingest_before, 'dashboard_cache_recompute_total{query_type="temperature:trends"}'
        ),
        "invalidations": servers.delta(ingest_after, ingest_before, "dashboard_cache_invalidations_total"),
        # Misses that waited for another computation (a refresh, or another dashboard's) and were served it.
        "missesServedBySingleFlight": sum(
            servers.delta(after, before, name)
            for name in after
            if name.startswith("dashboard_cache_singleflight_wait_total{") and 'outcome="served"' in name
        ),
        "eventsSent": servers.delta(ingest_after, ingest_before, "dashboard_events_sent_total"),
        "eventsSentByType": {
            name.split('"')[1]: servers.delta(ingest_after, ingest_before, name)
            for name in ingest_after
            if name.startswith("dashboard_events_sent_total{")
        },
        **clients,
    }
    # A peer's count of its cache lookups inside the selectors (bench/peer_settings/counting.py).
    peer_reads: dict[str, dict[str, float]] = {}
    for name in after:
        if name.startswith(PEER_READS + "{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', name))
            by_outcome = peer_reads.setdefault(labels["query_type"], {"hit": 0.0, "miss": 0.0})
            by_outcome[labels["outcome"]] += servers.delta(after, before, name)
    if peer_reads:
        result["peerCacheReads"] = peer_reads
    # What invalidates organization-wide keys (a reading only changes its unit's trend).
    result["stateChanges"] = sum(n for name, n in result["eventsSentByType"].items() if name != "reading")
    return result


def run(*, profile: dict, tool: str, workers: int) -> dict[str, object]:
    orgs = common.load_orgs()
    base = int(time.time())
    runs = [
        _one_run(cache=True, profile=profile, workers=workers, orgs=orgs, f_cnt_base=base),
        _one_run(cache=False, profile=profile, workers=workers, orgs=orgs, f_cnt_base=base + 10_000_000),
        # The longer TTL the README recommended before readings updated the windows in place.
        _one_run(cache=True, profile=profile, workers=workers, orgs=orgs, f_cnt_base=base + 20_000_000,
                 ttl=LONG_TTL_SECONDS),
    ]  # fmt: skip
    # The floor: the same day (uplinks, WebSockets, events, the project's servers behind them),
    # the dashboards' requests answered by the floor's constant bytes.
    floor = day(flags={"CACHE_TTL_SECONDS": str(TTL_SECONDS)}, profile=profile, workers=workers, orgs=orgs,
                f_cnt_base=base + 30_000_000, dash_app=FLOOR_WSGI)  # fmt: skip
    common.table(
        f"realistic day: {profile['realisticClients']} dashboards polling every {profile['pollSeconds']}s "
        f"(5 endpoints) and refetching on events, uplinks at {runs[0]['uplinkRatePerSecond']}/s, "
        f"{profile['realisticSeconds']}s measured",
        ["cache", "TTL s", "hit rate", "db q/load", "loads", "load p50 ms", "load p99 ms", "uplinks", "uplink p50 ms",
         "uplink p99 ms", "uplink->event p99 ms", "recomputes/min", "keys", "events", "state changes"],
        [
            ["on" if r["cache"] else "off", r["ttlSeconds"], r["hitRate"], r["dbQueriesPerLoad"],
             r["dashboardLoads"], r["loadLatency"]["p50_ms"], r["loadLatency"]["p99_ms"],
             r["uplinks"]["requests"], r["uplinks"]["p50_ms"], r["uplinks"]["p99_ms"], r["uplinkToEvent"]["p99_ms"],
             r["recomputesPerMinute"], r["cachedKeys"], r["eventsSent"], r["stateChanges"]]
            for r in runs
        ]
        + [["floor", "", None, None, None, floor["loadLatency"]["p50_ms"], floor["loadLatency"]["p99_ms"],
            floor["uplinks"]["requests"], floor["uplinks"]["p50_ms"], floor["uplinks"]["p99_ms"],
            floor["uplinkToEvent"]["p99_ms"], None, None, floor["eventsSent"], floor["stateChanges"]]],
    )  # fmt: skip
    on = runs[0]
    print(f"   hit rate by query type (cache on): {on['hitRateByQueryType']}", flush=True)
    print(f"   hit rate by query type (TTL {LONG_TTL_SECONDS}s): {runs[2]['hitRateByQueryType']}", flush=True)
    for r in (on, long_ttl := runs[2]):
        print(f"   computations by query type (TTL {r['ttlSeconds']}s): {r['recomputesByQueryType']};"
              f" rebuilt from their state: {r['rebuiltPerMinute']}/min", flush=True)  # fmt: skip
    for r in [*runs, floor]:
        name = "floor" if r is floor else f"cache {'on' if r['cache'] else 'off'}, TTL {r['ttlSeconds']}"
        boundary = "" if r["quarterHourAt"] is None else f"; a quarter-hour boundary at +{r['quarterHourAt']} s"
        print(f"   load P99 of each 5 s ({name}): {[round(v) for v in r['loadP99Per5s'] if v is not None]}{boundary}",
              flush=True)  # fmt: skip
        print(f"   CPU in cores ({name}): {r['cpuCores']}; ms per request answered (dash) and per uplink (ingest): "
              f"{r['cpuMs']}", flush=True)  # fmt: skip
        if r["loadErrors"]:
            print(f"   errors the dashboards met ({name}): {r['loadErrors']}", flush=True)
    for r in (on, long_ttl):
        copies = r["trackedCopies"]
        print(f"   the dashboard server's fast-path key reads (TTL {r['ttlSeconds']}s): {copies['hit']:,.0f} from the "
              f"worker's tracked copy, {copies['fetched']:,.0f} from Redis "
              f"({copies['fetchedPerRequest']} per request)", flush=True)  # fmt: skip
    for r in runs:
        print(f"   events sent by type (cache {'on' if r['cache'] else 'off'}, TTL {r['ttlSeconds']}): "
              f"{r['eventsSentByType']}", flush=True)  # fmt: skip
    for r in runs:
        print(f"   events received by the dashboards (cache {'on' if r['cache'] else 'off'}, TTL {r['ttlSeconds']}): "
              f"{r['eventsReceived']:,}; event -> its refetches answered P50 {r['eventRefetches']['p50_ms']} ms, "
              f"P99 {r['eventRefetches']['p99_ms']} ms; misses served by single flight "
              f"{r['missesServedBySingleFlight']:,.0f}", flush=True)  # fmt: skip
    on, off = runs[0], runs[1]

    def met(run: dict, ttl: int) -> dict[str, bool]:
        queries = run["dbQueriesPerLoad"] if run["dbQueriesPerLoad"] is not None else 99
        floor_p99 = floor["loadLatency"]["p99_ms"] or 0
        # With expiry alone, every cached value is computed once per TTL.
        expiry_alone = run["cachedKeys"] * 60 / ttl
        return {
            "hitRate>=0.99": (run["hitRate"] or 0) >= 0.99,
            "dbQueriesPerLoad<=0.05": queries <= 0.05,
            "loadP99<=2xFloor": (run["loadLatency"]["p99_ms"] or 1e9) <= 2 * floor_p99,
            "uplinkToEventP99<50ms": (run["uplinkToEvent"]["p99_ms"] or 1e9) < 50,
            # A rebuild from the state is counted as a computation here too.
            f"recomputesPerMinute<=expiryAlone({expiry_alone:.0f})": run["recomputesPerMinute"]
            + run["rebuiltPerMinute"]
            <= expiry_alone,
        }

    targets, targets_long = met(on, TTL_SECONDS), met(long_ttl, LONG_TTL_SECONDS)
    print(f"   targets at TTL {TTL_SECONDS}s: {targets}", flush=True)
    print(f"   targets at TTL {LONG_TTL_SECONDS}s: {targets_long}", flush=True)
    floor_busy = floor["cpuCores"].get("machine busy") or 0.0
    if floor_busy >= SATURATED:
        print(f"   the floor's own day kept the machine {floor_busy:.2f} busy (its load P99 "
              f"{floor['loadLatency']['p99_ms']} ms): this machine cannot carry the profile, and the latency "
              "targets above measure the machine, not the cache", flush=True)  # fmt: skip
    summary = {
        "orgs": len(orgs),
        "runs": runs,
        "floor": floor,
        "targets": targets,
        "targetsLongTtl": targets_long,
        "floorSaturated": floor_busy >= SATURATED,
        "cacheOffDbQueriesPerLoad": off["dbQueriesPerLoad"],
        "longTtlHitRate": long_ttl["hitRate"],
        "longTtlDbQueriesPerLoad": long_ttl["dbQueriesPerLoad"],
    }
    common.save("realistic", summary)
    return summary
