"""Benchmark runner: dataset, then the scenarios, each printing a table and writing bench/results/.

    .venv/bin/python -m bench                       # quick profile, a few minutes
    .venv/bin/python -m bench --profile full        # the reference numbers for bench/RESULTS.md
    .venv/bin/python -m bench --scenarios dashboard,invalidation --no-dataset

See bench/README.md for what each scenario measures.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench import common, dataset, wrk

PROFILES: dict[str, dict[str, object]] = {
    "quick": {
        "orgs": 20, "units": 25, "days": 1.0,
        "duration": 3.0, "warmup": 1.0, "headlineRounds": 2,
        "realisticSeconds": 75.0, "realisticClients": 40, "pollSeconds": 5.0, "uplinkScale": 1.0,
        "eventSamples": 100,
        "unrelatedKeys": (0, 100_000, 1_000_000), "invalidationRepeats": 15, "stampedeRounds": 5,
    },
    "full": {
        "orgs": 200, "units": 25, "days": 7.0,
        "duration": 10.0, "warmup": 2.0, "headlineRounds": 4,
        "realisticSeconds": 120.0, "realisticClients": 400, "pollSeconds": 5.0, "uplinkScale": 1.0,
        "eventSamples": 300,
        "unrelatedKeys": (0, 100_000, 1_000_000), "invalidationRepeats": 41, "stampedeRounds": 20,
    },
}  # fmt: skip
SCENARIOS = ("dashboard", "realistic", "events", "invalidation", "proxy", "peers")
# `peers` runs the realistic day five times over: asked for by name only.
DEFAULT_SCENARIOS = ("dashboard", "realistic", "events", "invalidation", "proxy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="coldchain-dashboard benchmarks")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS), help=f"comma-separated, from {SCENARIOS}")
    parser.add_argument("--no-dataset", action="store_true", help="reuse the bench database as it is")
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto", help="HTTP load generator")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--duration", type=float, help="seconds per load cell (overrides the profile)")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    profile = dict(PROFILES[args.profile], name=args.profile)
    if args.duration:
        profile["duration"] = args.duration
    tool = ("wrk" if wrk.available() else "python") if args.tool == "auto" else args.tool
    if tool == "wrk" and not wrk.available():
        parser.error("wrk is not installed (apt-get install wrk), use --tool python")

    started = time.perf_counter()
    if not args.no_dataset:
        info = dataset.generate(orgs=profile["orgs"], units=profile["units"], days=profile["days"])
        common.save("dataset", {"profile": args.profile, **info})
    common.save("machine", {"profile": args.profile, "tool": tool, **common.machine()})
    for name in chosen:
        print(f"\n#### scenario {name} ({args.profile} profile)", flush=True)
        dataset.vacuum_updated()
        module = __import__(f"bench.{name}", fromlist=["run"])
        module.run(profile=profile, tool=tool, workers=args.workers)
    print(f"\nbench finished in {time.perf_counter() - started:.0f}s; results in bench/results/", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
