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
    ("no-fast-path", "no-fast-path", None, "gunicorn"),
    ("no-prometheus-middleware", "no-prometheus-middleware", None, "gunicorn"),
    ("gthread keep-alive", "baseline", None, "gthread"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    tool = "wrk" if wrk.available() else "python"
    paths = [f"/api/orgs/{org.id}/stats" for org in common.load_orgs()]
    runs: dict[str, list[dict]] = {
        name: [] for name in ("floor", "floor gthread keep-alive", *(v[0] for v in VARIANTS))
    }
    with ExitStack() as stack:
        floor = servers.serve("floor", "gunicorn", FLOOR_WSGI, workers=args.workers, ready_path="/floor")
        targets = {"floor": (stack.enter_context(floor), None, ["/floor"])}
        floor_gthread = servers.serve("floor-gthread", "gthread", FLOOR_WSGI, workers=args.workers, ready_path="/floor")
        targets["floor gthread keep-alive"] = (stack.enter_context(floor_gthread), None, ["/floor"])
        for name, variant, workers, kind in VARIANTS:
            server = stack.enter_context(
                servers.serve(variant, kind, PROJECT_WSGI, workers=workers or args.workers,
                              DJANGO_SETTINGS_MODULE="bench.variant_settings", BENCH_VARIANT=variant)
            )  # fmt: skip
            cookie = servers.login(server)
            common.load(port=server.port, paths=paths, cookie=cookie, connections=4, duration=1, warmup=0, tool=tool)
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
