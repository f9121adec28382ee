"""A code change measured side by side: cached GET /stats from git revision REV vs the working tree.

    .venv/bin/python -m bench.ab REV [--rounds 4] [--duration 6] [--connections 50]

Both are served by gunicorn (same settings, same dataset and Redis db); rounds interleave the two
so that drift in the machine's load hits them alike. Prints median req/s, P99 and server CPU per
request of each and the ratios. Uses the existing bench dataset (`python -m bench.dataset`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from contextlib import ExitStack

from bench import common, env, servers, wrk
from bench.servers import PROJECT_WSGI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rev", help="the git revision to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args(argv)
    tool = "wrk" if wrk.available() else "python"
    paths = [f"/api/orgs/{org.id}/stats" for org in common.load_orgs()]
    rows: dict[str, list[tuple[float, float, float]]] = {args.rev: [], "working tree": []}
    with env.revision_tree(args.rev) as worktree, ExitStack() as stack:
        targets = {}
        for name, root in ((args.rev, worktree), ("working tree", env.ROOT)):
            server, cookie = stack.enter_context(
                servers.serve_cached(name.replace(" ", "-"), "gunicorn", PROJECT_WSGI, paths=paths, cwd=root,
                                     PYTHONPATH=env.tree_pythonpath(root))
            )  # fmt: skip
            targets[name] = (server, cookie)
        for _ in range(args.rounds):
            for name, (server, cookie) in targets.items():
                cpu = servers.cpu_seconds(server)
                result = common.load(
                    port=server.port, paths=paths, cookie=cookie, connections=args.connections,
                    duration=args.duration, warmup=1, tool=tool,
                )  # fmt: skip
                cpu_ms = (servers.cpu_seconds(server) - cpu) * 1000 / max(1, result["requests"])
                rows[name].append((result["rps"], result["p99_ms"], cpu_ms))
    medians = {
        name: [statistics.median(column) for column in zip(*values, strict=True)] for name, values in rows.items()
    }
    print(
        f"| code | req/s | P99 ms | server CPU ms/req |  ({args.rounds} interleaved rounds, {args.connections} conns)"
    )
    for name, (rps, p99, cpu_ms) in medians.items():
        print(f"| {name} | {rps:,.0f} | {p99:.1f} | {cpu_ms:.3f} |")
    (old_rps, old_p99, old_cpu), (new_rps, new_p99, new_cpu) = medians.values()
    print(f"working tree / {args.rev}: req/s {new_rps / old_rps:.2f}x, P99 {new_p99 / old_p99:.2f}x, "
          f"CPU per request {new_cpu / old_cpu:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
