"""Browser tests against a real daphne process (HTTP + WebSockets) on a free loopback port.

The server has its own SQLite database (migrated and seeded once per session) and uses this
suite's Redis databases (TEST_REDIS_CACHE_DB / TEST_REDIS_CHANNELS_DB), which the autouse
fixture of tests/conftest.py flushes before each test, so every test starts with a cold cache.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """One daphne process; `restart()` replaces it on the same port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="tests.settings",
            DATABASE_URL=f"sqlite:///{self.workdir / 'e2e.sqlite3'}",
            TEST_REDIS_CACHE_DB=os.environ.get("TEST_REDIS_CACHE_DB", "11"),
            TEST_REDIS_CHANNELS_DB=os.environ.get("TEST_REDIS_CHANNELS_DB", "12"),
            PYTHONUNBUFFERED="1",
        )
        return env

    def manage(self, *args: str) -> str:
        """Run a management command against the server's database; its stdout."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120,
        )
        if done.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", code)

    def start(self) -> None:
        assert self.process is None
        self.starts += 1
        log = open(self.workdir / f"daphne-{self.starts}.log", "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
             "dashboard_project.asgi:application"],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"daphne exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"daphne did not answer /health within {START_TIMEOUT_SECONDS}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        path = self.workdir / f"daphne-{self.starts}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _ensure_chromium() -> None:
    if not Path(CHROMIUM).exists():
        subprocess.run(["bash", str(REPO / "tests" / "system_deps.sh")], check=False)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing and tests/system_deps.sh could not install it (apt package chromium)")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(workdir=tmp_path_factory.mktemp("e2e"))
    srv.manage("migrate", "--noinput", "-v", "0")
    srv.manage("seed_demo", "--orgs", "2", "--units", "3", "--days", "0.2")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def org_ids(server: Server) -> dict[str, str]:
    """Demo organizations by slug: demo is a member of demo-1 only, admin of demo-2 only."""
    code = (
        "import json; from stats.models import Organization as O; "
        "print(json.dumps({o.slug: str(o.id) for o in O.objects.all()}))"
    )
    return json.loads(server.shell(code).strip().splitlines()[-1])


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    _ensure_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser, server: Server) -> Iterator[object]:
    ctx = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context) -> object:
    return context.new_page()


@pytest.fixture(autouse=True)
def _server_alive(server: Server) -> Iterator[None]:
    """A test that stopped the server (restart test) leaves a running one for the next."""
    yield
    if server.process is None or server.process.poll() is not None:
        server.process = None
        server.start()
