"""A bare machine: `make test` installs Redis and PostgreSQL when missing (tests/system_deps.sh,
ops/apt-install.sh) and starts them when not running (tests/services.py), saying what it did.

The machine's own packages and services are shared and stay as they are: the installer runs with
an `apt-get` on PATH that records what it was asked (the real one would change the machine), and
the services are started on free ports (a Redis, a PostgreSQL cluster made for the test)."""

from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path

import psycopg
import pytest
import redis

from tests import services
from tests.live import free_port
from tests.ops.tools import REPO

APT_INSTALL = REPO / "ops" / "apt-install.sh"
INSTALLED_POSTGRES = "/usr/lib/postgresql/*/bin/postgres:postgresql"


def _recording_apt_get(directory: Path) -> tuple[dict[str, str], Path]:
    """An environment whose `apt-get` records its arguments (one call a line) in the returned file."""
    (directory / "bin").mkdir()
    calls = directory / "apt-get.calls"
    apt_get = directory / "bin" / "apt-get"
    apt_get.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    apt_get.chmod(0o755)
    return {**os.environ, "PATH": f"{directory / 'bin'}:{os.environ['PATH']}"}, calls


def test_the_installer_asks_apt_for_the_missing_packages_only_and_says_so(tmp_path):
    env, calls = _recording_apt_get(tmp_path)
    checks = ["redis-server:redis-server", INSTALLED_POSTGRES, "no-such-command-here:redis-server"]
    done = subprocess.run(
        ["bash", str(APT_INSTALL), *checks],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "installing system packages: redis-server\n"
    assert calls.read_text().splitlines() == ["update -qq", "install -y -qq --no-install-recommends redis-server"]


def test_the_installer_run_by_another_user_than_root_names_the_command_and_fails():
    with APT_INSTALL.open() as script:  # on stdin: the other user may not reach the checkout
        done = subprocess.run(
            ["runuser", "-u", "nobody", "--", "bash", "-s", "--", "no-such-command-here:postgresql"],
            stdin=script,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    # and nothing else: apt-get, had it run, would have said why it could not
    assert done.stderr == "missing system packages: postgresql (as root: apt-get install postgresql)\n"


def test_a_redis_not_running_is_started_on_its_port(capfd):
    port = free_port()
    services.ensure_redis(f"redis://127.0.0.1:{port}")
    client = redis.Redis(port=port)
    try:
        assert client.ping()
        assert f"started Redis on 127.0.0.1:{port}" in capfd.readouterr().err
    finally:
        client.shutdown(nosave=True)


def test_a_redis_not_installed_is_reported_with_the_installer_to_run(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on it
    with pytest.raises(RuntimeError, match=r"redis-server is not installed \(tests/system_deps.sh installs it\)"):
        services.ensure_redis(f"redis://127.0.0.1:{free_port()}")


def test_a_postgres_cluster_not_running_is_started_and_the_database_created(capfd):
    version = Path(sorted(glob.glob(INSTALLED_POSTGRES.split(":")[0]))[-1]).parts[-3]
    name, port = f"services-test-{os.getpid()}", free_port()
    create = ["pg_createcluster", version, name, "-p", str(port), "--", "--auth=trust"]
    subprocess.run(create, check=True, capture_output=True, timeout=120)
    try:
        services.ensure_postgres(f"postgres://postgres@127.0.0.1:{port}/test")
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="test") as connection:
            assert connection.execute("SELECT current_database()").fetchone() == ("test",)
        said = capfd.readouterr().err
        assert f"started PostgreSQL {version}/{name} on 127.0.0.1:{port}" in said
        assert f"created database test on 127.0.0.1:{port}" in said
    finally:
        subprocess.run(["pg_dropcluster", "--stop", version, name], capture_output=True, timeout=120)
