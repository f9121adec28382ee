"""`make run` where no Redis answers at REDIS_URL: it starts a private one (ops/demo-redis.sh), the
demo is live (the simulator's uplinks reach an open dashboard's WebSocket), and stopping make's
process group stops everything it started, the private Redis included."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.faults.processes import wait_for
from tests.live import free_port, next_event
from tests.ops.tools import REPO
from tests.services import port_open

pytestmark = pytest.mark.live

_STARTED = re.compile(r"started a private Redis at redis://127\.0\.0\.1:(?P<port>[0-9]+) \(pid (?P<pid>[0-9]+)")


def _alive(pid: int, *, group: bool = False) -> bool:
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _demo_cookie(base: str) -> str:
    with httpx.Client(base_url=base, timeout=10) as client:
        client.get("/accounts/login/")
        response = client.post(
            "/accounts/login/",
            data={"username": "demo", "password": "demo", "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        )
        assert response.status_code == 302, response.text[:500]
        return client.cookies["sessionid"]


def test_make_run_without_redis_starts_a_private_one_is_live_and_stops_it(tmp_path: Path, closed_port: int):
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DJANGO_", "REDIS_"))}
    env |= {
        "REDIS_URL": f"redis://127.0.0.1:{closed_port}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "PORT": str(port),
        "DEMO_PASSWORD": "demo",
    }
    log = tmp_path / "make.log"
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, signalled as a terminal would
    )
    redis_pid = 0
    try:
        started = wait_for(lambda: _STARTED.search(log.read_text()), timeout=60, what="the private Redis")
        redis_port, redis_pid = int(started["port"]), int(started["pid"])
        wait_for(lambda: port_open("127.0.0.1", port), timeout=120, what=f"the demo on port {port}")
        base = f"http://127.0.0.1:{port}"
        cookie = _demo_cookie(base)
        org = httpx.get(f"{base}/api/orgs/", cookies={"sessionid": cookie}, timeout=10).json()["organizations"][0]
        headers = {"Origin": base, "Cookie": f"sessionid={cookie}"}
        with connect(f"ws://127.0.0.1:{port}/ws/orgs/{org['id']}/", additional_headers=headers) as dashboard:
            next_event(dashboard, "hello")
            reading = next_event(dashboard, "reading", timeout=30)  # posted by the simulator
        assert reading["data"]["temperature"] is not None
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=60)
        # Every process stopped cleanly, so make names no failed recipe (nor a crashed shell).
        assert "make: ***" not in log.read_text(), log.read_text()[-3000:]
        wait_for(lambda: not _alive(make.pid, group=True), timeout=30, what="every process of the demo to stop")
        assert not _alive(redis_pid) and not port_open("127.0.0.1", redis_port)
        assert f"stopped the private Redis (pid {redis_pid})" in log.read_text()
    finally:
        if _alive(make.pid, group=True):
            os.killpg(make.pid, signal.SIGKILL)
        make.wait(timeout=30)
        if redis_pid and _alive(redis_pid):  # its own session: the group's SIGKILL missed it
            os.kill(redis_pid, signal.SIGKILL)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
