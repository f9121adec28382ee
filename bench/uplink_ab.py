"""An uplink's cost, side by side: the webhook of git revision REV against the working tree's.

    .venv/bin/python -m bench.uplink_ab REV [--rounds 6] [--uplinks 100] [--payload generic|lht65] [--spacing 0.02]

Each side is one gunicorn worker on its own copy of the bench database (REV's copy migrated back
to REV's schema by the working tree's migrations), with every trend of one organization loaded
first, as an open dashboard has them. Rounds alternate the sides; in each, uplinks are POSTed one
after another, 20 ms apart (the events scenario's spacing; `--spacing 0`: back to back, as under
load, where PostgreSQL's backend does not go idle between them, and the first round trip after an
idle pause is slower). Prints, per side, the median over rounds of the POST's median and P90 round
trip and of the worker's CPU per uplink, and the ratios
(working tree / REV). `--payload lht65` posts a Dragino LHT65 frame with its version_ids (a
catalogued model; REV must read `temperature`, so `generic` is the default). Uses the existing
bench dataset (`python -m bench.dataset`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg

from bench import common, env, servers
from bench.client import Connection
from bench.eventlat import SPACING, open_dashboard
from bench.loadgen import percentile
from bench.servers import PROJECT_WSGI


def _copy_database(name: str) -> str:
    """A copy of the bench database (no one may be connected to it meanwhile); its URL."""
    with psycopg.connect(env.PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{env.DATABASE_NAME}"')
    return env.PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _drop_database(name: str) -> None:
    with psycopg.connect(env.PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrate_to(tree: Path, url: str) -> None:
    """Move the copy's schema back to the newest migration `tree` has, with this tree's code."""
    newest = sorted(p.stem for p in (tree / "stats" / "migrations").glob("0*.py"))[-1]
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "stats", newest, "--noinput", "-v", "0"],
        cwd=env.ROOT, env=env.server_env(DATABASE_URL=url), check=True,
    )  # fmt: skip


def _body(kind: str, dev_eui: str, temperature: float, f_cnt: int) -> bytes:
    if kind == "generic":
        return common.uplink_body(dev_eui, temperature, f_cnt)
    body = json.loads(common.uplink_body(dev_eui, temperature, f_cnt))
    body["uplink_message"]["decoded_payload"] = {"TempC_DS": temperature, "TempC_SHT": 21.7, "BatV": 3.05}
    body["uplink_message"]["version_ids"] = {"brand_id": "dragino", "model_id": "lht65"}
    return json.dumps(body).encode()


async def _post(port: int, org: common.Org, count: int, start: int, kind: str, spacing: float) -> list[float]:
    conn = Connection("127.0.0.1", port, headers={"Content-Type": "application/json"})
    times = []
    for i in range(count):
        k = (start + i) % len(org.units)
        low, high = org.ranges[k]
        body = _body(kind, org.devices[k], round((low + high) / 2 + (i % 40 - 20) * 0.01, 2), start + i)
        started = time.perf_counter()
        response = await conn.request("POST", "/api/webhooks/ttn", body=body, headers={"X-Webhook-Secret": org.secret})
        times.append((time.perf_counter() - started) * 1000)
        if response.status != 200 or json.loads(response.body)["status"] != "stored":
            raise RuntimeError(f"uplink not stored: {response.status} {response.body[:200]!r}")
        await asyncio.sleep(spacing)
    conn.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rev", help="the git revision to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--uplinks", type=int, default=100)
    parser.add_argument("--payload", choices=("generic", "lht65"), default="generic")
    parser.add_argument(
        "--spacing", type=float, default=SPACING,
        help="seconds between uplinks (0: back to back, so PostgreSQL never idles between them)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    org = common.load_orgs()[0]
    with env.revision_tree(args.rev) as worktree:
        sides = {args.rev: (worktree, "bench_uplink_ab_rev"), "working tree": (env.ROOT, "bench_uplink_ab_tree")}
        rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in sides}
        f_cnt = int(time.time()) + 50_000_000  # past the frame counters a realistic day left in the database
        try:
            urls = {name: _copy_database(db) for name, (_, db) in sides.items()}
            _migrate_to(worktree, urls[args.rev])
            with ExitStack() as stack:
                running = {}
                for name, (root, _) in sides.items():
                    server = stack.enter_context(servers.serve(
                        name.replace(" ", "-"), "gunicorn", PROJECT_WSGI, workers=1, cwd=root,
                        PYTHONPATH=env.tree_pythonpath(root), DATABASE_URL=urls[name],
                    ))  # fmt: skip
                    asyncio.run(
                        open_dashboard(argparse.Namespace(gunicorn=server.port, cookie=servers.login(server)), org)
                    )
                    running[name] = server
                for round_index in range(args.rounds):
                    order = list(running.items()) if round_index % 2 == 0 else list(reversed(running.items()))
                    for name, server in order:
                        cpu = servers.cpu_seconds(server)
                        posted = _post(server.port, org, args.uplinks, f_cnt, args.payload, args.spacing)
                        times = sorted(asyncio.run(posted))
                        f_cnt += args.uplinks
                        cpu_ms = (servers.cpu_seconds(server) - cpu) * 1000 / args.uplinks
                        rows[name].append((statistics.median(times), percentile(times, 0.9), cpu_ms))
        finally:
            for _, db in sides.values():
                _drop_database(db)
    medians = {name: [statistics.median(col) for col in zip(*values, strict=True)] for name, values in rows.items()}
    base, tree = medians[args.rev], medians["working tree"]
    common.table(
        f"uplink webhook, one gunicorn worker each, {args.payload} payload, trends cached; medians of "
        f"{args.rounds} alternating rounds of {args.uplinks} uplinks, {args.spacing * 1000:g} ms apart",
        ["code", "POST P50 ms", "POST P90 ms", "server CPU ms/uplink"],
        [[name, *(round(v, 2) for v in values)] for name, values in medians.items()]
        + [["ratio (tree / rev)", *(round(t / b, 3) for t, b in zip(tree, base, strict=True))]],
    )
    common.save("uplink_ab", {"rev": args.rev, "payload": args.payload, "spacingSeconds": args.spacing,
                              "rounds": rows, "medians": medians})  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
