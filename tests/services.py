"""Make sure the real Redis and PostgreSQL the tests use are running: start them when they are not
(and create the database DATABASE_URL names when it is missing), saying what was done.
tests/system_deps.sh installs them when they are missing (`make test` runs it first)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


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


def _say(message: str) -> None:
    print(f"tests/services.py: {message}", file=sys.stderr, flush=True)


def ensure_redis(url: str) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if port_open(host, port):
        return
    if host not in LOOPBACK:
        raise RuntimeError(f"Redis is not running at {host}:{port}, and it is not a local address to start it on")
    if not shutil.which("redis-server"):
        raise RuntimeError(
            f"Redis is not running on {host}:{port} and redis-server is not installed"
            " (tests/system_deps.sh installs it)"
        )
    command = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port)]
    subprocess.run([*command, "--save", "", "--appendonly", "no"], check=True)
    _wait("127.0.0.1", port, "Redis")
    _say(f"started Redis on 127.0.0.1:{port} ({' '.join(command)}, nothing kept on disk)")


def _cluster_on(port: int) -> tuple[str, str] | None:
    """(version, name) of the local cluster (Debian's pg_lsclusters) configured for `port`."""
    if not shutil.which("pg_lsclusters"):
        return None
    listed = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True).stdout
    for line in listed.splitlines():
        version, name, cluster_port, *_ = line.split()
        if int(cluster_port) == port:
            return version, name
    return None


def ensure_postgres(url: str) -> None:
    if not url.startswith(("postgres://", "postgresql://")):
        return
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    if not port_open(host, port):
        cluster = _cluster_on(port) if host in LOOPBACK else None
        if cluster is None:
            raise RuntimeError(
                f"PostgreSQL is not running on {host}:{port} and no local cluster serves that port"
                " (tests/system_deps.sh installs PostgreSQL, which creates one on 5432)"
            )
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "start"], check=True)
        _wait(host, port, "PostgreSQL")
        _say(f"started PostgreSQL {'/'.join(cluster)} on {host}:{port}")
    _ensure_database(host, port, parts.username or "postgres", parts.path.lstrip("/") or "postgres")


def _ensure_database(host: str, port: int, user: str, name: str) -> None:
    with psycopg.connect(host=host, port=port, user=user, dbname="postgres", autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            _say(f"created database {name} on {host}:{port}")


def ensure_all() -> None:
    from django.conf import settings  # the test settings: their REDIS_URL, as the suite reads it

    if not settings.REDIS_SENTINELS:
        ensure_redis(settings.REDIS_URL)
    ensure_postgres(os.environ.get("DATABASE_URL", ""))


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    ensure_all()
