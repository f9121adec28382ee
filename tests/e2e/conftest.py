"""Browser tests against a real daphne process (HTTP + WebSockets) on a free loopback port.

The server has its own SQLite database (migrated and seeded once per session) and uses this
suite's Redis databases (TEST_REDIS_CACHE_DB / TEST_REDIS_CHANNELS_DB), which the autouse
fixture of tests/conftest.py flushes before each test, so every test starts with a cold cache.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import REPO, Server

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
