"""Closed-loop HTTP load generator, run as its own process so it never shares the server's GIL.

    python -m bench.loadgen --port 8000 --paths-file paths.txt --cookie "sessionid=..." \
        --connections 50 --duration 10 --warmup 2

Each of `--connections` connections sends one GET, waits for the answer, sends the next; paths
are taken round-robin from the list (shared by all connections). Prints one JSON object:
requests, rps, latency percentiles in ms, status counts, errors. Requests answered during the
warm-up are not counted. `wrk` does the same with less CPU; bench/wrk.py drives it when present.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time

from bench.client import Connection


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def summarize(latencies: list[float], seconds: float) -> dict[str, object]:
    ordered = sorted(latencies)
    ms = lambda v: None if v is None else round(v * 1000, 3)  # noqa: E731
    return {
        "requests": len(ordered),
        "seconds": round(seconds, 3),
        "rps": round(len(ordered) / seconds, 1) if seconds else 0.0,
        "p50_ms": ms(percentile(ordered, 0.50)),
        "p95_ms": ms(percentile(ordered, 0.95)),
        "p99_ms": ms(percentile(ordered, 0.99)),
        "max_ms": ms(ordered[-1] if ordered else None),
    }


async def run(
    *,
    host: str,
    port: int,
    paths: list[str],
    headers: dict[str, str],
    connections: int,
    duration: float,
    warmup: float,
    tls: bool = False,
) -> dict[str, object]:
    next_path = itertools.cycle(paths).__next__
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    started = time.perf_counter()
    measure_from = started + warmup
    stop_at = measure_from + duration

    async def worker() -> None:
        conn = Connection(host, port, headers=headers, tls=tls)
        try:
            while True:
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                try:
                    response = await conn.request("GET", next_path())
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    errors.append(type(exc).__name__)
                    conn.close()
                    await asyncio.sleep(0.01)
                    continue
                done = time.perf_counter()
                if sent >= measure_from and done <= stop_at:
                    latencies.append(done - sent)
                    statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    result = summarize(latencies, duration)
    result.update(connections=connections, statuses=statuses, errors=len(errors), tool="python")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="closed-loop HTTP load generator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("--paths-file", help="one path per line")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--tls", action="store_true", help="HTTPS (the certificate is not verified)")
    args = parser.parse_args(argv)
    paths = list(args.path)
    if args.paths_file:
        with open(args.paths_file) as handle:
            paths += [line.strip() for line in handle if line.strip()]
    if not paths:
        parser.error("give --path or --paths-file")
    headers = dict(h.split(": ", 1) for h in args.header)
    result = asyncio.run(
        run(
            host=args.host,
            port=args.port,
            paths=paths,
            headers=headers,
            connections=args.connections,
            duration=args.duration,
            warmup=args.warmup,
            tls=args.tls,
        )
    )
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
