"""Where the benchmark runs: its own PostgreSQL database and Redis databases, never anyone else's.

The bench may drop and recreate `bench` and flush Redis dbs 7 and 8. Override with the BENCH_*
variables below (documented in bench/README.md) when those are taken on a machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE_NAME = os.environ.get("BENCH_DATABASE_NAME", "bench")
DATABASE_URL = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + DATABASE_NAME
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_CACHE_DB = int(os.environ.get("BENCH_REDIS_CACHE_DB", "7"))
REDIS_CHANNELS_DB = int(os.environ.get("BENCH_REDIS_CHANNELS_DB", "8"))

USERNAME = "bench"
PASSWORD = "bench-password-not-secret"


def server_env(**overrides: str) -> dict[str, str]:
    """The environment of every server the bench starts (and of its in-process scenario).

    Production-like: DEBUG off (DEBUG keeps a log of every query), quiet logging; one secret key
    for all instances so a session made on one is valid on the others.
    """
    env = dict(os.environ)
    for name in ("DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR", "METRICS_TOKEN", "REDIS_HOST", "REDIS_PORT"):
        env.pop(name, None)
    env.update(
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        REDIS_CACHE_DB=str(REDIS_CACHE_DB),
        REDIS_CHANNELS_DB=str(REDIS_CHANNELS_DB),
        DJANGO_DEBUG="0",
        # Plain HTTP on loopback, no proxy in front (the proxy scenario's topology sets it back on).
        DJANGO_BEHIND_TLS_PROXY="0",
        DJANGO_SECRET_KEY="bench-only-secret-key-not-for-production-0123456789",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
        CACHE_ENABLED="1",
        PYTHONPATH=str(ROOT),
    )
    env.update(overrides)
    return env


_ONLY_THIS_TREE = """
import sys
# The venv's editable install maps the project's packages to the main checkout: a module that only
# exists there (a newer revision's) would be imported into this tree's server. Drop that finder.
sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "__name__", "") != "_EditableFinder"]
"""


def tree_pythonpath(root: Path) -> str:
    """PYTHONPATH for a server of the checkout at `root` (another revision's worktree, say): its
    own packages, and none of the main checkout's through the venv's editable install."""
    site = Path(tempfile.mkdtemp(prefix="bench-tree-site-"))
    (site / "sitecustomize.py").write_text(_ONLY_THIS_TREE)
    return f"{site}:{root}"


@contextmanager
def revision_tree(rev: str) -> Iterator[Path]:
    """A checkout of git revision `rev` beside this one (a detached worktree), removed afterwards:
    the "before" side of the side-by-side benchmarks (`bench.ab`, `bench.uplink_ab`,
    `bench.compute_ab`)."""
    worktree = Path(tempfile.mkdtemp(prefix="bench-rev-")) / "tree"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(worktree), rev], cwd=ROOT, check=True)
    try:
        yield worktree
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
