"""Measure candidate hot-path changes side by side: cached GET /stats under gunicorn at 50 connections.

    .venv/bin/python -m bench.variants [--rounds 3] [--duration 8]

One gunicorn per variant of bench/variant_settings.py (plus the floor) runs for the whole
measurement; rounds interleave the variants so that drift in the machine's load hits them alike.
Reports the median req/s and P99 of each, relative to the baseline. Uses the existing dataset.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from contextlib import ExitStack

from bench import common, servers, wrk
from bench.servers import FLOOR_WSGI, PROJECT_WSGI

# (label, BENCH_VARIANT, gunicorn workers (None = --workers), server kind)
VARIANTS = (
    ("baseline", "baseline", None, "gunicorn"),
    ("no-tracked-copies", "no-tracked-copies", None, "gunicorn"),
    ("no-fast-path", "no-fast-path", None, "gunicorn"),
    ("no-prometheus-middleware", "no-prometheus-middleware", None, "gunicorn"),
    ("gthread keep-alive", "baseline", None, "gthread"),
    ("4 workers", "baseline", 4, "gunicorn"),
    ("no-redis-round-trip (upper bound)", "no-redis-round-trip", None, "gunicorn"),
)
# The floor under each server configuration a variant uses: (label, workers, server kind).
FLOORS = (
    ("floor", None, "gunicorn"),
    ("floor gthread keep-alive", None, "gthread"),
    ("floor 4 workers", 4, "gunicorn"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated variant labels (default: all); the floor of each one's server configuration runs too",
    )
    args = parser.parse_args(argv)
    chosen = [v for v in VARIANTS if not args.only or v[0] in args.only.split(",")]
    if not any(v[0] == "baseline" for v in chosen):
        parser.error("--only must include baseline (the other variants are reported relative to it)")
    tool = "wrk" if wrk.available() else "python"
    paths = [f"/api/orgs/{org.id}/stats" for org in common.load_orgs()]
    configurations = {(workers, kind) for _, _, workers, kind in chosen}
    floors = [f for f in FLOORS if (f[1], f[2]) in configurations]
    runs: dict[str, list[dict]] = {name: [] for name in (*(f[0] for f in floors), *(v[0] for v in chosen))}
    with ExitStack() as stack:
        targets = {}
        for name, workers, kind in floors:
            floor = servers.serve(name.replace(" ", "-"), kind, FLOOR_WSGI, workers=workers or args.workers,
                                  ready_path="/floor")  # fmt: skip
            targets[name] = (stack.enter_context(floor), None, ["/floor"])
        for name, variant, workers, kind in chosen:
            server, cookie = stack.enter_context(
                servers.serve_cached(variant, kind, PROJECT_WSGI, paths=paths, workers=workers or args.workers,
                                     DJANGO_SETTINGS_MODULE="bench.variant_settings", BENCH_VARIANT=variant)
            )  # fmt: skip
            targets[name] = (server, cookie, paths)
        for round_number in range(args.rounds):
            for name, (server, cookie, round_paths) in targets.items():
                cpu_before = servers.cpu_seconds(server)
                result = common.load(
                    port=server.port, paths=round_paths, cookie=cookie,
                    connections=args.connections, duration=args.duration, warmup=1, tool=tool,
                )  # fmt: skip
                if result["errors"] or any(not k.startswith("2") and v for k, v in result["statuses"].items()):
                    raise RuntimeError(f"{name}: errors {result['errors']}, statuses {result['statuses']}")
                # The warm-up second is included in the CPU time, so count its requests too (approximately).
                served = result["requests"] * (1 + 1 / args.duration)
                result["cpu_ms_per_req"] = round(1000 * (servers.cpu_seconds(server) - cpu_before) / served, 3)
                runs[name].append(result)
                rps, p99, cpu = result["rps"], result["p99_ms"], result["cpu_ms_per_req"]
                print(f"   round {round_number + 1} {name:26} {rps:>8.1f} req/s p99 {p99:.1f} ms cpu {cpu:.3f} ms/req")
    summary = {
        name: {key: statistics.median(r[key] for r in rs) for key in ("rps", "p99_ms", "cpu_ms_per_req")}
        for name, rs in runs.items()
    }
    base, floor = summary["baseline"], summary["floor"]
    common.table(
        f"hot-path variants: cached GET /stats, gunicorn {args.workers} sync workers, {args.connections} connections, "
        f"median of {args.rounds} interleaved rounds of {args.duration:g}s ({tool})",
        ["variant", "req/s", "p99 ms", "server CPU ms/req", "CPU vs baseline", "vs baseline req/s", "vs floor req/s",
         "p99 vs floor"],
        [[name, s["rps"], s["p99_ms"], s["cpu_ms_per_req"], common.ratio(s["cpu_ms_per_req"], base["cpu_ms_per_req"]),
          common.ratio(s["rps"], base["rps"]), common.ratio(s["rps"], floor["rps"]),
          common.ratio(s["p99_ms"], floor["p99_ms"])] for name, s in summary.items()],
    )  # fmt: skip
    common.save("variants", {"tool": tool, "connections": args.connections, "summary": summary, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
