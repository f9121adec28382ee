"""Profile the cached stats hot path under gunicorn with py-spy (optional: `pip install py-spy`).

    .venv/bin/python -m bench.profile [--seconds 15] [--connections 50]

Starts gunicorn (sync workers) on the bench database, primes the cache, loads
GET /api/orgs/<id>/stats at 50 connections and samples every worker with `py-spy record`.
Prints the functions with the most samples, on-CPU only (`own` = the function itself,
`total` = with what it calls), and writes bench/results/profile.json.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading

from bench import common, servers, wrk
from bench.servers import PROJECT_WSGI

TOP = 25


def _frame(raw: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"; keep function and file.
    name, _, where = raw.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def aggregate(collapsed: str) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        # Leading pseudo-frames name the process and thread; only code frames are kept.
        frames = [_frame(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    return samples, own.most_common(TOP), total.most_common(TOP)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="py-spy profile of the cached stats path under gunicorn")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(servers.env.BIN / "py-spy")
    if not os.path.exists(spy):
        parser.error("py-spy is not installed: .venv/bin/pip install py-spy")
    orgs = common.load_orgs()
    paths = [f"/api/orgs/{org.id}/stats" for org in orgs]
    tool = "wrk" if wrk.available() else "python"
    cached = servers.serve_cached("profile", "gunicorn", PROJECT_WSGI, paths=paths, workers=args.workers)
    with cached as (server, cookie):
        load_result: dict = {}
        loader = threading.Thread(
            target=lambda: load_result.update(
                common.load(port=server.port, paths=paths, cookie=cookie, connections=args.connections,
                            duration=args.seconds + 2, warmup=0, tool=tool)
            )
        )  # fmt: skip
        loader.start()
        with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as out:
            pass
        subprocess.run(
            [spy, "record", "--pid", str(server.process.pid), "--subprocesses", "--duration", str(args.seconds),
             "--rate", "250", "--format", "raw", "--nonblocking", "--output", out.name],
            check=True, capture_output=True,
        )  # fmt: skip
        loader.join()
    with open(out.name) as handle:
        samples, own, total = aggregate(handle.read())
    common.table(
        f"py-spy, cached GET /stats under gunicorn ({args.workers} sync workers, {args.connections} connections, "
        f"{load_result.get('rps')} req/s while sampled): {samples} samples, top by own time",
        ["function (file)", "own %"],
        [[name, round(100 * n / samples, 1)] for name, n in own],
    )
    common.table(
        "top by total time (with callees)",
        ["function (file)", "total %"],
        [[name, round(100 * n / samples, 1)] for name, n in total],
    )
    common.save("profile", {"samples": samples, "load": load_result, "own": own, "total": total})
    return 0


if __name__ == "__main__":
    sys.exit(main())
