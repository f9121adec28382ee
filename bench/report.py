"""Render bench/results/*.json as Markdown tables (the numbers part of bench/RESULTS.md).

.venv/bin/python -m bench.report [results-dir] > /tmp/numbers.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import env, peers
from bench.events import ROWS

RESULTS_DIR = Path(sys.argv[1]) if len(sys.argv) > 1 else env.RESULTS_DIR


def _load(name: str) -> dict | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def _table(columns: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def _rounds_table(headline: dict) -> str:
    """Interleaved rounds of the floor and the cached stats, with the medians the targets use."""
    columns = ["round", "order", "floor req/s", "cached req/s", "floor P99 ms", "cached P99 ms",
               "cached/floor req/s", "cached/floor P99"]  # fmt: skip
    rows = [
        [r["round"], r["order"], r["floorRps"], r["cachedRps"], r["floorP99"], r["cachedP99"],
         r["cachedOverFloorRps"], r["cachedOverFloorP99"]]
        for r in headline["rounds"]
    ]  # fmt: skip
    medians = [headline["cachedOverFloorRps"], headline["cachedOverFloorP99"]]
    return _table(columns, [*rows, ["median", None, None, None, None, None, *medians]])


def render() -> str:
    parts: list[str] = []
    machine, dataset = _load("machine"), _load("dataset")
    if machine:
        versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
        parts.append(
            f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['ramGiB']} GiB RAM; {versions}. "
            f"Profile `{machine['profile']}`, HTTP load generator `{machine['tool']}`."
        )
    if dataset:
        parts.append(
            f"Dataset: {dataset['orgs']} orgs x {dataset['unitsPerOrg']} units, {dataset['days']:g} days, "
            f"{dataset['readings']:,} readings, generated in {dataset['totalSeconds']} s."
        )
    if dashboard := _load("dashboard"):
        parts.append("### 1. Dashboard: GET /api/orgs/<id>/stats round-robin over all orgs")
        parts.append(
            _table(
                [
                    "server",
                    "mode",
                    "conns",
                    "req/s",
                    "P50 ms",
                    "P95 ms",
                    "P99 ms",
                    "server CPU ms/req",
                    "DB queries/req",
                    "hit rate",
                ],
                [
                    [
                        r["server"],
                        r["mode"],
                        r["connections"],
                        r["rps"],
                        r["p50_ms"],
                        r["p95_ms"],
                        r["p99_ms"],
                        r.get("cpuMsPerRequest"),
                        r.get("dbQueriesPerRequest"),
                        r.get("hitRate") if r["mode"] == "cached" else None,
                    ]
                    for r in dashboard["rows"]
                ],
            )  # fmt: skip
        )
        parts.append(
            _table(
                [
                    "server",
                    "conns",
                    "cached/floor req/s",
                    "cached/floor P99",
                    "cached/cache-off req/s",
                    "cached/cold req/s",
                    "cached/floor CPU per req",
                    "gunicorn/daphne cached req/s",
                ],
                [
                    [
                        r["server"],
                        r["connections"],
                        r["cachedOverFloorRps"],
                        r["cachedOverFloorP99"],
                        r["cachedOverCacheOffRps"],
                        r["cachedOverColdRps"],
                        r.get("cachedOverFloorCpuPerRequest"),
                        r.get("gunicornOverDaphneCachedRps"),
                    ]
                    for r in dashboard["ratios"]
                ],
            )  # fmt: skip
        )
        if headline := dashboard.get("headline"):
            parts.append(
                "Targets' cells, gunicorn at 50 connections: the floor and the cached stats interleaved"
                " (order alternating, both servers up); the targets are judged on the medians."
            )
            parts.append(_rounds_table(headline))
    if proxy := _load("proxy"):
        headline = proxy["headline"]
        parts.append("### Through the production topology: nginx (TLS) in front of gunicorn, against the floor")
        parts.append(
            f"`make serve`'s proxy and gunicorn ({proxy['workers']} sync workers) in front of the project and"
            " of the floor, 50 connections, interleaved rounds; targets on the medians. Hit rate"
            f" {headline['hitRate']}, fast path served {headline['fastPathServed']:.0f} requests."
        )
        parts.append(_rounds_table(headline))
    if realistic := _load("realistic"):
        parts.append("### 2. Realistic day")
        floor = realistic.get("floor")
        rows = [
            [
                "on" if r["cache"] else "off", r.get("ttlSeconds"), r["hitRate"], r["dbQueriesPerLoad"],
                r["dashboardLoads"], r["loadLatency"]["p50_ms"], r["loadLatency"]["p99_ms"], r["uplinkRatePerSecond"],
                r["uplinks"]["p50_ms"], r["uplinks"]["p99_ms"], (r.get("uplinkToEvent") or {}).get("p99_ms"),
                r.get("recomputesPerMinute"), r.get("cachedKeys"), r["eventsSent"], r.get("stateChanges"),
            ]
            for r in realistic["runs"]
        ]  # fmt: skip
        if floor:
            rows.append(
                ["floor", None, None, None, None, floor["loadLatency"]["p50_ms"], floor["loadLatency"]["p99_ms"],
                 floor["uplinkRatePerSecond"], floor["uplinks"]["p50_ms"], floor["uplinks"]["p99_ms"],
                 floor["uplinkToEvent"]["p99_ms"], None, None, floor["eventsSent"], floor.get("stateChanges")]
            )  # fmt: skip
        parts.append(
            _table(
                [
                    "cache",
                    "TTL s",
                    "hit rate",
                    "DB queries/load",
                    "loads",
                    "load P50 ms",
                    "load P99 ms",
                    "uplinks/s",
                    "uplink P50 ms",
                    "uplink P99 ms",
                    "uplink -> event P99 ms",
                    "recomputes/min",
                    "cached keys",
                    "events sent",
                    "state changes",
                ],
                rows,
            )  # fmt: skip
        )
        for run in realistic["runs"]:
            if run["cache"]:
                parts.append(
                    f"Hit rate by query type (cache on, TTL {run['ttlSeconds']} s): "
                    + ", ".join(f"{k} {_fmt(v)}" for k, v in run["hitRateByQueryType"].items())
                    + "."
                )
        days = [(("on" if r["cache"] else "off") + (f", TTL {r['ttlSeconds']} s" if r["cache"] else ""), r)
                for r in realistic["runs"]] + ([("floor", floor)] if floor else [])  # fmt: skip
        if all("cpuMs" in r for _, r in days):
            parts.append(
                _table(
                    [
                        "day",
                        "dash cores",
                        "ingest cores",
                        "machine busy",
                        "dash CPU ms/request",
                        "ingest CPU ms/uplink",
                    ],
                    [
                        [
                            name,
                            r["cpuCores"].get("dash"),
                            r["cpuCores"].get("ingest"),
                            r["cpuCores"].get("machine busy"),
                            r["cpuMs"]["dashPerRequest"],
                            r["cpuMs"]["ingestPerUplink"],
                        ]
                        for name, r in days
                    ],
                )
            )
        for key, label in (("targets", "TTL 60 s"), ("targetsLongTtl", "TTL 600 s")):
            if key in realistic:
                parts.append(f"Targets at {label}: " + ", ".join(f"{k} {v}" for k, v in realistic[key].items()) + ".")
    if events := _load("events"):
        parts.append("### 3. Event latency")
        parts.append(
            _table(
                ["path", "samples", "P50 ms", "P95 ms", "P99 ms", "max ms", "lost / stale after ack"],
                [
                    [
                        label,
                        events[k]["requests"],
                        events[k]["p50_ms"],
                        events[k]["p95_ms"],
                        events[k]["p99_ms"],
                        events[k]["max_ms"],
                        events[k].get("lost", events[k].get("staleAnswersAfterAck")),
                    ]
                    for k, label in ROWS.items()
                    if k in events  # results from before a row was added
                ],
            )  # fmt: skip
        )
    if invalidation := _load("invalidation"):
        parts.append(f"### 4. Invalidation of one org ({invalidation['keysCached']} keys) vs unrelated keys")
        none = invalidation["levels"][0]
        parts.append(
            _table(
                [
                    "unrelated keys",
                    "index median ms",
                    "index P90 ms",
                    "x vs none",
                    "sweep median ms",
                    "sweep P90 ms",
                    "x vs none",
                ],
                [
                    [
                        f"{lv['unrelatedKeys']:,}",
                        lv["index"]["median_ms"],
                        lv["index"]["p90_ms"],
                        round(lv["index"]["median_ms"] / none["index"]["median_ms"], 2),
                        lv["sweep"]["median_ms"],
                        lv["sweep"]["p90_ms"],
                        round(lv["sweep"]["median_ms"] / none["sweep"]["median_ms"], 1),
                    ]
                    for lv in invalidation["levels"]
                ],
            )  # fmt: skip
        )
        s = invalidation["stampede"]
        parts.append(
            f"Stampede: {s['threads']} threads right after an invalidation, {s['rounds']} rounds: "
            f"{_fmt(s['recomputesPerInvalidation']['mean'])} recomputes per invalidation on average "
            f"(max {_fmt(s['recomputesPerInvalidation']['max'])}), {s['distinctBodiesPerRound']} distinct body per "
            f"round, round median {s['roundMedian_ms']} ms."
        )
    if variants := _load("variants"):
        parts.append("### Hot-path variants (bench/variants.py)")
        summary = variants["summary"]
        base, floor = summary["baseline"], summary["floor"]
        parts.append(
            _table(
                [
                    "variant",
                    "req/s",
                    "P99 ms",
                    "server CPU ms/req",
                    "CPU vs baseline",
                    "req/s vs baseline",
                    "req/s vs floor",
                    "P99 vs floor",
                ],
                [
                    [
                        name,
                        s["rps"],
                        s["p99_ms"],
                        s.get("cpu_ms_per_req"),
                        round(s["cpu_ms_per_req"] / base["cpu_ms_per_req"], 2) if s.get("cpu_ms_per_req") else None,
                        round(s["rps"] / base["rps"], 2),
                        round(s["rps"] / floor["rps"], 2),
                        round(s["p99_ms"] / floor["p99_ms"], 2),
                    ]
                    for name, s in summary.items()
                ],
            )  # fmt: skip
        )
    if peers_run := _load("peers"):
        parts.append(f"### 5. {peers.title(peers_run['profile'], peers_run['runs'])}")
        parts.append(_table(peers.COLUMNS, peers.rows(peers_run["runs"])))
        parts.append("\n".join(f"- {line}" for line in peers.notes(peers_run["runs"])))
    if profile := _load("profile"):
        parts.append(f"### py-spy, cached path under gunicorn ({profile['samples']} samples)")
        rows = [[name, round(100 * n / profile["samples"], 1)] for name, n in profile["own"][:15]]
        parts.append(_table(["function (file), own time", "% of samples"], rows))
    if stages := _load("stages"):
        cached = "trends cached" if stages["trendsCached"] else "trends uncached"
        title = f"one gunicorn worker, {stages['uplinks']} uplinks, {cached}"
        parts.append(f"### Uplink webhook stages (bench/stages.py; {title})")
        rows = [[name, s["median"], s["p90"], s["p99"]] for name, s in stages["stages"].items()]
        parts.append(_table(["stage (ms; queries: count)", "median", "P90", "P99"], rows))
        gc_ms = stages["fullCollectionMs"]
        parts.append(
            f"Requests paused by a full garbage collection: {stages['pausedByFullCollection']}. A full collection "
            f"with the application loaded: {_fmt(gc_ms['frozen']['ms'])} ms with the startup heap frozen (as served; "
            f"{gc_ms['frozen']['objectsWalked']:,} objects walked), {_fmt(gc_ms['unfrozen']['ms'])} ms unfrozen "
            f"({gc_ms['unfrozen']['objectsWalked']:,} objects)."
        )
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
