"""Every process stops cleanly on SIGTERM (supervisors) and SIGINT (Ctrl-C): daphne
(`dashboard_project.asgi_server`) and the gunicorn master with its workers, each stopped under
load 20 times in a row per signal and started again on the same port; and the two long-running
commands.

A clean stop: exit status 0 and no traceback, fatal error or segmentation fault in the log; the
request in flight when the signal came gets its answer; every uplink answered 2xx is stored;
every WebSocket client gets a close frame with 1001 (going away: the page reconnects and
resyncs); the next start answers its first request.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from django.test import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from stats.models import TemperatureReading
from tests import factories
from tests.faults.load import HeldUplink, Load, Post, UplinkStream
from tests.faults.processes import wait_for
from tests.live import ROOT, LiveServer, free_port, start_daphne, start_gunicorn
from tests.live import test_database_url as database_url

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

CYCLES = 20
WEBSOCKETS = 3
DASHBOARDS = 2
STOP_TIMEOUT = 20.0  # the grace period (SHUTDOWN_GRACE_SECONDS, 8 s) and then some
CLOSE_GOING_AWAY = 1001
ALARMING = ("Traceback", "Fatal Python error", "Segmentation fault", "Still busy after the grace period", "SIGKILL")
STOPPING = "received: stopping"  # dashboard_project.shutdown logs it once per process


@dataclass
class World:
    org_id: str
    secret: str
    stream_eui: str  # the UplinkStream's device
    held_eui: str  # the held uplinks' device (their own frame counters)
    cookie: str


@pytest.fixture
def world(transactional_db) -> World:
    org = factories.organization("Stop")
    stream_device, held_device = (factories.device(factories.unit(org)) for _ in range(2))
    client = Client()
    client.force_login(factories.member(org))
    return World(
        str(org.id), org.webhook_secret, stream_device.dev_eui, held_device.dev_eui, client.cookies["sessionid"].value
    )


@dataclass
class Stop:
    """What one start, load and stop of a server showed."""

    first_status: int
    returncode: int
    log: str
    held_status: int
    held_reading: int | None
    close_codes: list[int | None] = field(default_factory=list)
    answered: list[Post] = field(default_factory=list)  # the stream's uplinks answered 2xx


def _websocket(server: LiveServer, world: World, stack: ExitStack) -> ClientConnection:
    conn = stack.enter_context(
        connect(
            f"{server.ws_url}/ws/orgs/{world.org_id}/",
            additional_headers={"Origin": server.url, "Cookie": f"sessionid={world.cookie}"},
            open_timeout=10,
        )
    )
    assert '"hello"' in conn.recv(timeout=10)
    return conn


def _close_code(conn: ClientConnection) -> int | None:
    """Read as the page does, every event as it comes, until the connection ends; the code of the
    close frame the server sent (None: the connection just dropped). A client that stops reading
    leaves the close frame behind the events it did not take, and a server that has stopped
    cannot wait for it to catch up."""
    try:
        while True:
            conn.recv(timeout=STOP_TIMEOUT + 10)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    except TimeoutError:
        return None


@dataclass(frozen=True)
class Server:
    start: Callable[[], LiveServer]
    websockets: bool
    # A log line saying the stop has begun: daphne took the signal; gunicorn's idle worker is
    # exiting (so the master has told the workers; the busy one takes the signal only once its
    # request is read: gunicorn restarts the read rather than interrupt it).
    stopping: str


def _start_load_stop(server_kind: Server, world: World, signum: int, cycle: int) -> Stop:
    """One cycle; the signal goes to the process group (as systemd or a shell's Ctrl-C sends
    it) on even cycles and to the main process only (as `docker stop` does) on odd ones."""
    sockets: list[ClientConnection] = []
    with ExitStack() as stack:
        server = server_kind.start()
        stack.callback(server.stop)  # only if the cycle failed: it has exited by then otherwise
        readers = stack.enter_context(ThreadPoolExecutor(WEBSOCKETS))  # shut down once the sockets are closed
        stats = f"/api/orgs/{world.org_id}/stats"
        first = httpx.get(f"{server.url}{stats}", cookies={"sessionid": world.cookie}, timeout=10)
        if server_kind.websockets:
            sockets = [_websocket(server, world, stack) for _ in range(WEBSOCKETS)]
        close_codes = [readers.submit(_close_code, conn) for conn in sockets]
        held = HeldUplink(server, secret=world.secret, dev_eui=world.held_eui, f_cnt=cycle + 1)
        with (
            Load(server, cookie=world.cookie, paths=[stats], clients=DASHBOARDS) as load,
            UplinkStream(server, secret=world.secret, dev_eui=world.stream_eui, every=0.02) as stream,
        ):
            wait_for(
                lambda: len(load.samples) >= 3 and any(p.status == 200 for p in stream.posts),
                timeout=15,
                what="dashboards polling and uplinks stored",
            )
            if cycle % 2 == 0:
                os.killpg(server.process.pid, signum)
            else:
                server.process.send_signal(signum)
            wait_for(lambda: server_kind.stopping in server.log.read_text(), timeout=10, what="the stop to begin")
            # The held request is in flight across the stop: its body arrives only now.
            held_status, held_body = held.finish()
            returncode = server.process.wait(timeout=STOP_TIMEOUT)
        return Stop(
            first_status=first.status_code,
            returncode=returncode,
            log=server.log.read_text(),
            held_status=held_status,
            held_reading=held_body.get("readingId"),
            close_codes=[code.result(timeout=STOP_TIMEOUT) for code in close_codes],
            answered=[p for p in stream.posts if 200 <= p.status < 300],
        )


def _from_first_alarm(log: str) -> str:
    """The log from its first alarming line on ("" when it has none)."""
    lines = log.splitlines()
    first = next((i for i, line in enumerate(lines) if any(word in line for word in ALARMING)), None)
    return "" if first is None else "\n".join(lines[first : first + 40])


def _websocket_lines(log: str) -> str:
    """The log's lines about WebSockets and the stop (daphne's access log: WSCONNECT, WSDISCONNECT)."""
    return "\n".join(line for line in log.splitlines() if any(m in line for m in (" WS", "stopping", "Drained")))


def _assert_clean(stops: list[Stop]) -> None:
    stored = set(TemperatureReading.objects.values_list("id", flat=True))
    alarming = [_from_first_alarm(s.log) for s in stops if _from_first_alarm(s.log)]
    assert [s.returncode for s in stops] == [0] * len(stops), "\n=====\n".join(alarming)
    assert not alarming, "\n=====\n".join(alarming)
    assert [s.first_status for s in stops] == [200] * len(stops)
    assert [(s.held_status, s.held_reading in stored) for s in stops] == [(200, True)] * len(stops)
    not_going_away = [
        f"{s.close_codes} {_websocket_lines(s.log)}" for s in stops if set(s.close_codes) - {CLOSE_GOING_AWAY}
    ]
    assert not not_going_away, "\n=====\n".join(not_going_away)
    answered = [p for s in stops for p in s.answered]
    assert answered and [p.f_cnt for p in answered if p.body.get("readingId") not in stored] == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("kind", ["daphne", "gunicorn"])
def test_a_server_stopped_under_load_answers_what_is_in_flight_and_exits_0_every_time(world, tmp_path, kind, signum):
    port = free_port()  # the same port every time: the next start must bind it at once
    if kind == "daphne":  # WebSockets in production, and everything under `make run`
        server = Server(lambda: start_daphne(tmp_path, port=port, own_session=True), True, STOPPING)
    else:  # the production HTTP server, reading ./gunicorn.conf.py
        server = Server(lambda: start_gunicorn(tmp_path, port=port, own_session=True), False, "Worker exiting")
    stops = [_start_load_stop(server, world, signum, cycle) for cycle in range(CYCLES)]
    _assert_clean(stops)


def _command(*args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",  # its first line as soon as it is written
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _first_line(process: subprocess.Popen) -> str:
    line = process.stdout.readline()  # blocks until the command is running (or exited)
    assert line, process.stderr.read()
    return line


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_sweep_and_the_simulator_exit_0_on_a_stop_signal(world, tmp_path: Path, signum):
    server = start_daphne(tmp_path)
    try:
        sweep = _command("sweep_devices", "--every", "0.2")
        simulator = _command("simulate_ttn", "--url", server.url, "--rate", "50", "--orgs", "org-")
        assert _first_line(sweep).startswith("sweep:")
        assert _first_line(simulator).startswith("simulating 2 devices")
        wait_for(lambda: TemperatureReading.objects.exists(), timeout=15, what="the simulator's uplinks stored")
        for process in (sweep, simulator):
            os.killpg(process.pid, signum)
        sweep_out, sweep_err = sweep.communicate(timeout=STOP_TIMEOUT)
        simulator_out, simulator_err = simulator.communicate(timeout=STOP_TIMEOUT)
    finally:
        server.stop()
    assert (sweep.returncode, simulator.returncode) == (0, 0), sweep_err + simulator_err
    assert not any(word in sweep_err + simulator_err for word in ALARMING), sweep_err + simulator_err
    assert STOPPING in sweep_err and STOPPING in simulator_err
    assert simulator_out.splitlines()[-1].endswith("uplinks, 0 failed")  # its last uplink was answered too
