"""Where an uplink's server time goes: one instrumented gunicorn worker, uplinks posted one at a time.

    .venv/bin/python -m bench.stages [--uplinks 300] [--no-trends]

The worker serves `bench.stage_timer:application` (the project's application with timers around
the webhook's stages and its SQL) on the bench database. First every unit's trend of one
organization is loaded, as an open dashboard does (`--no-trends`: not, so no reading refreshes
one); then uplinks are POSTed one after another, 20 ms apart, as in the events scenario. Prints
each stage's median, P90 and P99 in ms (a stage absent from a request counts 0 there) and how
many requests a full garbage collection paused. Wall-clock times of one process on a shared
machine: read the shares, not the absolute figures.

Then, in a fresh process with the application loaded (`dashboard_project.wsgi`, which freezes
the startup heap), full collections timed side by side with the heap frozen and unfrozen
(`gc.unfreeze()`, as before the freeze), alternating, median of 7 each. Writes
bench/results/stages.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common, env, servers
from bench.client import Connection
from bench.eventlat import SPACING, open_dashboard
from bench.loadgen import percentile

ORDER = ["request (all)", "org lookup", "parse", "transaction body", "commit", "emit (all)", "invalidate",
         "in-place update", "refresh", "send", "sql", "queries", "gc2"]  # fmt: skip


GC_PROBE = """
import gc, json, statistics, time
import dashboard_project.wsgi
def full():
    walked = len(gc.get_objects())  # the tracked objects outside the permanent (frozen) generation
    started = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - started) * 1000, walked
runs = {"frozen": [], "unfrozen": []}
for _ in range(7):
    runs["frozen"].append(full())
    gc.unfreeze()
    runs["unfrozen"].append(full())
    gc.freeze()
print(json.dumps({k: {"ms": statistics.median(ms for ms, _ in v), "objectsWalked": v[-1][1]} for k, v in runs.items()}))
"""


def _full_collections() -> dict[str, dict[str, float]]:
    out = subprocess.run([sys.executable, "-c", GC_PROBE], cwd=env.ROOT, capture_output=True, text=True,
                         env=env.server_env(DJANGO_SETTINGS_MODULE="dashboard_project.settings"))  # fmt: skip
    if out.returncode:
        raise RuntimeError(f"gc probe failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.splitlines()[-1])


async def _post(port: int, org: common.Org, count: int) -> None:
    conn = Connection("127.0.0.1", port, headers={"Content-Type": "application/json"})
    f_cnt = int(time.time())
    for i in range(count):
        k = i % len(org.units)
        low, high = org.ranges[k]
        body = common.uplink_body(org.devices[k], round((low + high) / 2 + (i % 40 - 20) * 0.01, 2), f_cnt + i)
        response = await conn.request("POST", "/api/webhooks/ttn", body=body, headers={"X-Webhook-Secret": org.secret})
        if response.status != 200:
            raise RuntimeError(f"uplink refused: {response.status} {response.body[:200]!r}")
        await asyncio.sleep(SPACING)
    conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uplinks", type=int, default=300)
    parser.add_argument("--no-trends", action="store_true", help="leave the trends uncached")
    args = parser.parse_args(argv)
    org = common.load_orgs()[0]
    log = Path(tempfile.mkdtemp(prefix="bench-stages-")) / "stages.jsonl"
    with servers.serve("stages", "gunicorn", "bench.stage_timer:application", workers=1,
                       BENCH_STAGES_FILE=str(log)) as server:  # fmt: skip
        if not args.no_trends:
            cookie = servers.login(server)
            asyncio.run(open_dashboard(argparse.Namespace(gunicorn=server.port, cookie=cookie), org))
        asyncio.run(_post(server.port, org, args.uplinks))
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    rows, summary = [], {}
    for stage in ORDER:
        values = sorted(r.get(stage, 0.0) for r in requests)
        cells = {"median": statistics.median(values), "p90": percentile(values, 0.9), "p99": percentile(values, 0.99)}
        summary[stage] = {k: round(v, 3) for k, v in cells.items()}
        rows.append([stage, *(round(v, 2) for v in cells.values())])
    paused = sum(1 for r in requests if "gc2" in r)
    common.table(
        f"uplink webhook stages, one gunicorn worker, {len(requests)} uplinks"
        f" ({'trends uncached' if args.no_trends else 'trends cached'}); ms, except queries",
        ["stage", "median", "p90", "p99"],
        rows,
    )
    print(f"   requests paused by a full garbage collection: {paused}", flush=True)
    gc_ms = _full_collections()
    common.table(
        "full garbage collection in a process with the application loaded (median of 7, alternating)",
        ["startup heap", "ms", "objects walked"],
        [[name, round(gc_ms[name]["ms"], 3), gc_ms[name]["objectsWalked"]] for name in ("frozen", "unfrozen")],
    )
    common.save("stages", {"uplinks": len(requests), "trendsCached": not args.no_trends, "stages": summary,
                           "pausedByFullCollection": paused, "fullCollectionMs": gc_ms})  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
