"""Make sure the real PostgreSQL and Redis the tests use are running; start them if not."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait(host: str, port: int, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up on {host}:{port} within {seconds:.0f}s")


def ensure_redis(port: int = 6379) -> None:
    if port_open("127.0.0.1", port):
        return
    if not shutil.which("redis-server"):
        raise RuntimeError("Redis is not running on 127.0.0.1:6379 and redis-server is not installed")
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    _wait("127.0.0.1", port, "Redis")


def ensure_postgres() -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return
    if port_open("127.0.0.1", 5432):
        return
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    if not versions or not shutil.which("pg_ctlcluster"):
        raise RuntimeError("PostgreSQL is not running on 127.0.0.1:5432 and no local cluster is installed")
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], check=True)
    _wait("127.0.0.1", 5432, "PostgreSQL")


def ensure_all() -> None:
    ensure_redis()
    ensure_postgres()


if __name__ == "__main__":
    ensure_all()
