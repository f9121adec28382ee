"""Scenario proxy: the cached stats through the production topology (`make serve`: nginx with TLS
in front of gunicorn's sync workers) against the floor behind the same proxy.

Two topologies run side by side (bench/topology.py): the project, and bench/floor.py's bare JSON
view behind the same nginx configuration, TLS and gunicorn command. `GET /api/orgs/<id>/stats`
round-robin over every organization (all cached first) and `GET /floor` are measured at 50
connections in interleaved rounds (the order alternating, as the dashboard scenario's headline);
the targets are judged on the medians of the per-round ratios: cached/floor throughput >= 0.60,
cached/floor P99 <= 2.0. The load generator keeps its connections (and TLS sessions) open, as a
browser does; nginx opens a new connection to a sync worker for every request.
"""

from __future__ import annotations

from bench import common, servers
from bench.dashboard import headline_rounds, median_ratios, print_rounds


def run(*, profile: dict, tool: str, workers: int) -> dict[str, object]:
    orgs = common.load_orgs()
    paths = [f"/api/orgs/{org.id}/stats" for org in orgs]
    floor = servers.serve("proxy-floor", "topology", "floor", workers=workers, ready_path="/floor")
    cached = servers.serve_cached("proxy-cache-on", "topology", "project", paths=paths, workers=workers)
    with floor as floor_server, cached as (server, cookie):
        before = servers.metrics(server)
        rounds = headline_rounds(floor_server, server, paths, cookie, profile, tool)
        after = servers.metrics(server)
    hits = servers.dashboard_delta(after, before, "dashboard_cache_hit_total")
    misses = servers.dashboard_delta(after, before, "dashboard_cache_miss_total")
    served = servers.delta(after, before, 'dashboard_fast_path_requests_total{outcome="served"}')
    headline = {
        **median_ratios(rounds),
        "hitRate": round(hits / (hits + misses), 4) if hits + misses else None,
        "fastPathServed": served,
    }
    print_rounds(
        f"proxy: GET /api/orgs/<id>/stats through nginx (TLS) -> gunicorn ({workers} sync workers) over"
        f" {len(orgs)} orgs vs the floor behind the same proxy, 50 conns, {len(rounds)} interleaved rounds"
        f" ({tool}, {profile['duration']}s each; targets on the medians: req/s >= 0.60, P99 <= 2.0)",
        rounds,
        headline,
    )
    print(f"   hit rate {headline['hitRate']}, fast path served {served:.0f} requests", flush=True)
    targets = {
        "cachedOverFloorRps>=0.60": headline["cachedOverFloorRps"] >= 0.60,
        "cachedOverFloorP99<=2.0": headline["cachedOverFloorP99"] <= 2.0,
    }
    summary = {"orgs": len(orgs), "tool": tool, "workers": workers, "headline": {"rounds": rounds, **headline}}
    summary["targets"] = targets
    common.save("proxy", summary)
    return summary
