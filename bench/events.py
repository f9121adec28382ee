"""Scenario 3, event latency: uplink POST -> WebSocket message, and uplink POST -> fresh stats.

Servers: daphne A and daphne B (two instances sharing Redis, as behind a load balancer) and
gunicorn (the recommended HTTP server). The clients (bench/eventlat.py) run in their own process;
see its docstring for the exact measurements. The target is event -> WebSocket P99 < 50 ms.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

from bench import common, env, servers
from bench.servers import PROJECT_ASGI, PROJECT_WSGI

# The result's rows, in print order: WebSocket rows first (the target), then the rest.
ROWS = {
    "sameInstance": "uplink POST to daphne A -> WebSocket on A",
    "otherInstance": "uplink POST to daphne A -> WebSocket on B (shared Redis)",
    "gunicornToDaphne": "uplink POST to gunicorn -> WebSocket on daphne A",
    "uplinkToFreshStats": "uplink POST to gunicorn -> GET stats shows it",
    "daphneAnswered": "uplink POST to daphne A -> its 200 (server's part)",
    "gunicornAnswered": "uplink POST to gunicorn -> its 200 (server's part)",
}


def run(*, profile: dict, tool: str, workers: int) -> dict[str, object]:
    org = common.load_orgs()[0]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        handle.write(common.orgs_to_json([org]))
    with (
        servers.serve("daphne-a", "daphne", PROJECT_ASGI) as daphne_a,
        servers.serve("daphne-b", "daphne", PROJECT_ASGI) as daphne_b,
        servers.serve("gunicorn", "gunicorn", PROJECT_WSGI, workers=workers) as gunicorn,
    ):
        cookie = servers.login(gunicorn)
        command = [
            sys.executable, "-m", "bench.eventlat", "--org-file", handle.name,
            "--daphne-a", str(daphne_a.port), "--daphne-b", str(daphne_b.port), "--gunicorn", str(gunicorn.port),
            "--cookie", cookie, "--samples", str(profile["eventSamples"]),
            "--stats-samples", str(max(20, profile["eventSamples"] // 5)), "--f-cnt-base", str(int(time.time())),
        ]  # fmt: skip
        out = subprocess.run(command, cwd=env.ROOT, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"bench.eventlat failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout)
    rows = []
    for key, label in ROWS.items():
        r = result[key]
        rows.append([label, r["requests"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["max_ms"],
                     r.get("lost", r.get("staleAnswersAfterAck"))])  # fmt: skip
    common.table(
        f"event latency ({profile['eventSamples']} uplinks per WebSocket row; last column: messages lost, "
        "or for stats: stale answers to GETs sent after the POST's 200)",
        ["path", "samples", "p50 ms", "p95 ms", "p99 ms", "max ms", "lost/stale"],
        rows,
    )
    worst_ws_p99 = max(result[k]["p99_ms"] or 1e9 for k in ("sameInstance", "otherInstance", "gunicornToDaphne"))
    summary = {"org": org.id, **result, "targets": {"eventToWebSocketP99<50ms": worst_ws_p99 < 50}}
    common.save("events", summary)
    return summary
