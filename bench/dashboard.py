"""Scenario 1, dashboard: GET /api/orgs/<id>/stats, round-robin over every organization.

Modes, each at 1, 10 and 50 concurrent connections, under gunicorn (sync workers, the recommended
HTTP server) and daphne alone:
  cached     cache primed (one request per org first), then the load: every request a hit.
  cold       `?refresh=1` on every request: the miss path (aggregate in PostgreSQL, then store),
             with authorization still cached. A flushed cache would turn cold only for the first
             request of each org (200 requests, then everything hits), too few to measure; refresh
             makes every request pay the miss, which is what a cold or invalidated cache costs.
  cache off  a server started with CACHE_ENABLED=0: aggregates and the principal from PostgreSQL
             on every request (sessions still come from Redis, as configured).
  floor      bench/floor.py: bare Django JSON view, no middleware, no cache, no database.
The targets are judged on interleaved rounds of the floor and the cached stats at 50 connections
under gunicorn (`headline_rounds`), both servers up, the order alternating; the medians of the
per-round ratios are the headline.
"""

from __future__ import annotations

import statistics

from bench import common, servers
from bench.servers import FLOOR_ASGI, FLOOR_WSGI, PROJECT_ASGI, PROJECT_WSGI

CONCURRENCY = (1, 10, 50)


def _measure(server, paths, cookie, connections, profile, tool) -> dict[str, object]:
    before = servers.metrics(server) if cookie else {}
    cpu_before = servers.cpu_seconds(server)
    result = common.load(
        port=server.port,
        paths=paths,
        cookie=cookie,
        connections=connections,
        duration=profile["duration"],
        warmup=profile["warmup"],
        tool=tool,
        tls=server.tls,
    )
    # Server CPU per request: steadier than req/s when other work shares the machine. The warm-up's
    # requests are estimated from the measured rate, since its CPU time is included.
    served = result["requests"] * (1 + profile["warmup"] / profile["duration"])
    result["cpuMsPerRequest"] = round(1000 * (servers.cpu_seconds(server) - cpu_before) / max(1.0, served), 3)
    if cookie:
        after = servers.metrics(server)
        measured = max(1, result["requests"])
        # Counters include the warm-up, so these are per request over warm-up + measurement.
        hits = servers.dashboard_delta(after, before, "dashboard_cache_hit_total")
        misses = servers.dashboard_delta(after, before, "dashboard_cache_miss_total")
        requests = servers.delta(after, before, "django_http_requests_total_by_view_transport_method_total")
        result["dbQueriesPerRequest"] = round(
            servers.delta(after, before, "django_db_execute_total") / max(1.0, requests or measured), 3
        )
        result["hitRate"] = round(hits / (hits + misses), 4) if hits + misses else None
    bad = sum(v for k, v in result["statuses"].items() if not k.startswith("2"))
    if bad or result["errors"]:
        print(f"   !! {bad} non-2xx answers, {result['errors']} errors: {result['statuses']}", flush=True)
    return result


def headline_rounds(floor_server, server, paths, cookie, profile, tool) -> list[dict[str, object]]:
    """The targets' cells, the floor and the cached stats at 50 connections, measured in
    alternating order (floor first, then cached first, ...) with both servers up: on a shared
    machine whose speed drifts by tens of percent within minutes, cells measured minutes apart
    compare the drift as much as the code."""
    rounds = []
    for n in range(1, int(profile["headlineRounds"]) + 1):
        order = ("floor", "cached") if n % 2 else ("cached", "floor")
        measured = {}
        for mode in order:
            if mode == "floor":
                measured[mode] = _measure(floor_server, ["/floor"], None, 50, profile, tool)
            else:
                measured[mode] = _measure(server, paths, cookie, 50, profile, tool)
        floor, cached = measured["floor"], measured["cached"]
        rounds.append(
            {
                "round": n,
                "order": " then ".join(order),
                "floorRps": floor["rps"],
                "cachedRps": cached["rps"],
                "floorP99": floor["p99_ms"],
                "cachedP99": cached["p99_ms"],
                "cachedOverFloorRps": common.ratio(cached["rps"], floor["rps"]),
                "cachedOverFloorP99": common.ratio(cached["p99_ms"], floor["p99_ms"]),
            }
        )
        print(
            f"   headline round {n} ({rounds[-1]['order']}): floor {floor['rps']:.0f} req/s, cached"
            f" {cached['rps']:.0f} req/s ({rounds[-1]['cachedOverFloorRps']}), P99 x{rounds[-1]['cachedOverFloorP99']}",
            flush=True,
        )
    return rounds


def median_ratios(rounds: list[dict[str, object]]) -> dict[str, float]:
    """The headline's two ratios: the medians over the rounds (a failed round counts as the worst)."""
    return {
        "cachedOverFloorRps": statistics.median(r["cachedOverFloorRps"] or 0 for r in rounds),
        "cachedOverFloorP99": statistics.median(r["cachedOverFloorP99"] or 99 for r in rounds),
    }


def print_rounds(title: str, rounds: list[dict[str, object]], headline: dict[str, object]) -> None:
    """The interleaved floor/cached rounds, one row each, and their medians."""
    common.table(
        title,
        ["round", "order", "floor req/s", "cached req/s", "floor P99 ms", "cached P99 ms", "cached/floor req/s",
         "cached/floor P99"],
        [
            [r["round"], r["order"], r["floorRps"], r["cachedRps"], r["floorP99"], r["cachedP99"],
             r["cachedOverFloorRps"], r["cachedOverFloorP99"]]
            for r in rounds
        ]
        + [["median", "", None, None, None, None, headline["cachedOverFloorRps"], headline["cachedOverFloorP99"]]],
    )  # fmt: skip


def run(*, profile: dict, tool: str, workers: int) -> dict[str, object]:
    orgs = common.load_orgs()
    stats_paths = [f"/api/orgs/{org.id}/stats" for org in orgs]
    refresh_paths = [f"{p}?refresh=1" for p in stats_paths]
    rows: list[dict[str, object]] = []

    def record(kind: str, mode: str, connections: int, result: dict[str, object]) -> None:
        rows.append({"server": kind, "mode": mode, "connections": connections, **result})
        print(
            f"   {kind:8} {mode:9} c={connections:<3} {result['rps']:>8.1f} req/s  p50 {result['p50_ms']:.2f}"
            f"  p99 {result['p99_ms']:.2f} ms",
            flush=True,
        )

    rounds: list[dict[str, object]] = []
    for kind, app, floor_app in (("gunicorn", PROJECT_WSGI, FLOOR_WSGI), ("daphne", PROJECT_ASGI, FLOOR_ASGI)):
        floor = servers.serve(f"{kind}-floor", kind, floor_app, workers=workers, ready_path="/floor")
        cached = servers.serve_cached(f"{kind}-cache-on", kind, app, paths=stats_paths, workers=workers)
        with floor as floor_server, cached as (server, cookie):
            for c in CONCURRENCY:
                record(kind, "floor", c, _measure(floor_server, ["/floor"], None, c, profile, tool))
            for c in CONCURRENCY:
                record(kind, "cached", c, _measure(server, stats_paths, cookie, c, profile, tool))
            for c in CONCURRENCY:
                record(kind, "cold", c, _measure(server, refresh_paths, cookie, c, profile, tool))
            if kind == "gunicorn":
                rounds = headline_rounds(floor_server, server, stats_paths, cookie, profile, tool)
        with servers.serve(f"{kind}-cache-off", kind, app, workers=workers, CACHE_ENABLED="0") as server:
            cookie = servers.login(server)
            for c in CONCURRENCY:
                record(kind, "cache-off", c, _measure(server, stats_paths, cookie, c, profile, tool))

    def get(kind: str, mode: str, c: int) -> dict[str, object]:
        return next(r for r in rows if r["server"] == kind and r["mode"] == mode and r["connections"] == c)

    common.table(
        "dashboard: GET /api/orgs/<id>/stats round-robin over "
        f"{len(orgs)} orgs ({tool}, {profile['duration']}s per cell)",
        ["server", "mode", "conns", "req/s", "p50 ms", "p95 ms", "p99 ms", "cpu ms/req", "db q/req", "hit rate"],
        [
            [r["server"], r["mode"], r["connections"], r["rps"], r["p50_ms"], r["p95_ms"], r["p99_ms"],
             r["cpuMsPerRequest"], r.get("dbQueriesPerRequest"), r.get("hitRate")]
            for r in rows
        ],
    )  # fmt: skip
    ratios = []
    for kind in ("gunicorn", "daphne"):
        for c in CONCURRENCY:
            cached, floor, off, cold = (get(kind, m, c) for m in ("cached", "floor", "cache-off", "cold"))
            ratios.append(
                {
                    "server": kind,
                    "connections": c,
                    "cachedOverFloorRps": common.ratio(cached["rps"], floor["rps"]),
                    "cachedOverFloorP99": common.ratio(cached["p99_ms"], floor["p99_ms"]),
                    "cachedOverCacheOffRps": common.ratio(cached["rps"], off["rps"]),
                    "cachedOverColdRps": common.ratio(cached["rps"], cold["rps"]),
                    "cachedOverFloorCpuPerRequest": common.ratio(cached["cpuMsPerRequest"], floor["cpuMsPerRequest"]),
                }
            )
    for c in CONCURRENCY:
        ratios.append(
            {
                "server": "gunicorn/daphne",
                "connections": c,
                "cachedOverFloorRps": None,
                "cachedOverFloorP99": None,
                "cachedOverCacheOffRps": None,
                "cachedOverColdRps": None,
                "gunicornOverDaphneCachedRps": common.ratio(
                    get("gunicorn", "cached", c)["rps"], get("daphne", "cached", c)["rps"]
                ),
            }
        )
    common.table(
        "dashboard ratios (targets at 50 conns under gunicorn: cached/floor >= 0.60, P99 <= 2.0x, cached/off >= 20)",
        ["server", "conns", "cached/floor req/s", "cached/floor P99", "cached/off req/s", "cached/cold req/s",
         "cached/floor cpu/req", "gunicorn/daphne cached"],
        [
            [r["server"], r["connections"], r["cachedOverFloorRps"], r["cachedOverFloorP99"],
             r["cachedOverCacheOffRps"], r["cachedOverColdRps"], r.get("cachedOverFloorCpuPerRequest"),
             r.get("gunicornOverDaphneCachedRps")]
            for r in ratios
        ],
    )  # fmt: skip
    headline = {
        **median_ratios(rounds),
        "cachedOverCacheOffRps": common.ratio(
            statistics.median(r["cachedRps"] for r in rounds), get("gunicorn", "cache-off", 50)["rps"]
        ),
    }
    print_rounds(
        f"dashboard headline: gunicorn at 50 conns, floor and cached interleaved in {len(rounds)} rounds"
        " (targets on the medians)",
        rounds,
        headline,
    )
    targets = {
        "cachedOverFloorRps>=0.60": headline["cachedOverFloorRps"] >= 0.60,
        "cachedOverFloorP99<=2.0": headline["cachedOverFloorP99"] <= 2.0,
        "cachedOverCacheOffRps>=20": (headline["cachedOverCacheOffRps"] or 0) >= 20,
    }
    summary = {"orgs": len(orgs), "tool": tool, "workers": workers, "rows": rows, "ratios": ratios}
    summary["headline"] = {"rounds": rounds, **headline}
    summary["targets"] = targets
    common.save("dashboard", summary)
    return summary
