"""Real server processes (daphne, gunicorn) for tests that need WebSockets, several instances or a stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.db import connection
from websockets.sync.client import ClientConnection

from tests.services import port_open

ROOT = Path(__file__).resolve().parent.parent


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, never one this process handed out before: the kernel
    may offer a port again once its probe socket is closed, and two servers of one set-up (a
    master and its sentinel) must not be given the same one."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def test_database_url() -> str:
    """A URL for the database this test run created, for child processes to share."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    return (
        f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"
    )


@dataclass
class LiveServer:
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_daphne(
    log_dir: Path,
    *,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
    daphne_args: tuple[str, ...] = (),
    own_session: bool = False,
) -> LiveServer:
    """Daphne as production and `make run` start it: through `dashboard_project.asgi_server`."""
    port = port or free_port()
    command = ["-m", "dashboard_project.asgi_server", "-b", "127.0.0.1", "-p", str(port), *daphne_args]
    return _start([*command, "dashboard_project.asgi:application"], "daphne", port, log_dir, extra_env, own_session)


def start_gunicorn(
    log_dir: Path, *, extra_env: dict[str, str] | None = None, port: int | None = None, own_session: bool = False
) -> LiveServer:
    """The production HTTP server: a gunicorn master with two sync workers (./gunicorn.conf.py)."""
    port = port or free_port()
    command = ["-m", "gunicorn", "--workers", "2", "-b", f"127.0.0.1:{port}", "dashboard_project.wsgi:application"]
    return _start(command, "gunicorn", port, log_dir, extra_env, own_session)


def _start(
    args: list[str], name: str, port: int, log_dir: Path, extra_env: dict[str, str] | None, own_session: bool
) -> LiveServer:
    """Run `python <args>` until it accepts connections on `port`; `own_session` puts it in a
    process group of its own (a test that signals the group, as a supervisor does)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": test_database_url(),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        **(extra_env or {}),
    }
    log = log_dir / f"{name}-{port}.log"
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=own_session,
    )
    server = LiveServer(port, process, log)
    deadline = time.monotonic() + 30
    while not port_open("127.0.0.1", port, timeout=0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} did not start on port {port}:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return server


def next_event(conn: ClientConnection, wanted: str, timeout: float = 5.0) -> dict:
    """The next WebSocket message of type `wanted` (others skipped), within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(conn.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message["type"] == wanted:
            return message
