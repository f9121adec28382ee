"""An organization's stats computed side by side: git revision REV vs the working tree.

    .venv/bin/python -m bench.compute_ab REV [--rounds 5]

Each round runs, in a fresh process per tree (alternating, so that drift in the machine's load
hits both alike), every organization's stats twice over: computed whole (a miss, a state change's
refresh) and rebuilt from a kept compliance state (the refresh ahead of expiry, the first read after
a 15-minute boundary). Prints the median CPU per call of each tree (the calling process's own CPU:
what the dashboard or webhook server spends; the database's is not in it) and the ratios. Uses the
existing bench dataset (`python -m bench.dataset`); reads only, no Redis.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from bench import env

# Run in each tree: the selectors' names are the same before and after.
_PROBE = """
import json, sys, time
from bench import dataset
dataset.setup_django()
from django.utils import timezone
from stats import selectors
from stats.models import Organization
from stats.windowed import compliance_state

orgs = list(Organization.objects.order_by("slug").values_list("id", flat=True))
states = {o: compliance_state(org_id=o, now=timezone.now()).dumps() for o in orgs}
selectors.organization_stats_stateful(org_id=orgs[0])  # the first call's imports and connection
out = {}
for name, call in (
    ("computed", lambda o: selectors.organization_stats_stateful(org_id=o)),
    ("rebuilt", lambda o: selectors.organization_stats_from_state(states[o], org_id=o)),
):
    started = time.process_time()
    for o in orgs:
        assert call(o) is not None
    out[name] = (time.process_time() - started) * 1000 / len(orgs)
print(json.dumps(out))
"""


def _probe(root: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=root, env={**env.server_env(), "PYTHONPATH": env.tree_pythonpath(root)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rev", help="the git revision to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with env.revision_tree(args.rev) as worktree:
        trees = {args.rev: worktree, "working tree": env.ROOT}
        rows: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, root in trees.items():
                rows[name].append(_probe(root))
    medians = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in rows.items()}
    print(f"| code | stats computed, CPU ms/call | stats rebuilt from state, CPU ms/call |  ({args.rounds} rounds)")
    for name, m in medians.items():
        print(f"| {name} | {m['computed']:.2f} | {m['rebuilt']:.2f} |")
    old, new = medians[args.rev], medians["working tree"]
    print(f"working tree / {args.rev}: computed {new['computed'] / old['computed']:.2f}x, "
          f"rebuilt {new['rebuilt'] / old['rebuilt']:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
