"""A Redis outage under steady traffic is logged, not flooded: each boundary that loses Redis (the
dashboard cache, the channel layer) writes one line when the trouble starts and one when it ends,
with how many operations failed meanwhile, however many requests, uplinks and WebSocket
connects ran into it."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterator

import pytest
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from dashboard_project.outage import QUIET_SECONDS, OutageLog
from stats.models import Role
from tests import factories
from tests.faults.load import Load, UplinkStream
from tests.faults.processes import RedisProcess, stop_all, wait_for
from tests.live import LiveServer, start_daphne

# A line of the server's log: "<date> <time> <LEVEL> <logger> <message>" (settings.LOGGING).
_LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) (?P<logger>\S+) (?P<message>.*)$")
_ENDED = re.compile(r"answering again: (?P<failed>[0-9]+) operations failed over [0-9.]+s")


class Dashboard:
    """A browser tab's socket: reconnects a moment after every close, as dashboard.js does."""

    def __init__(self, server: LiveServer, org_id: object, cookie: str) -> None:
        self.url = f"{server.ws_url}/ws/orgs/{org_id}/"
        self.headers = {"Origin": server.url, "Cookie": f"sessionid={cookie}"}
        self.received: list[tuple[float, str]] = []
        self.closed_with: list[int] = []
        self.refused = 0  # connects that ended before their hello
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            hello = False
            try:
                with connect(self.url, additional_headers=self.headers, open_timeout=5) as conn:
                    while not self.stop.is_set():
                        try:
                            kind = json.loads(conn.recv(timeout=0.2))["type"]
                        except TimeoutError:
                            continue
                        hello = hello or kind == "hello"
                        self.received.append((time.monotonic(), kind))
            except ConnectionClosed as closed:
                self.closed_with.append(closed.rcvd.code if closed.rcvd else 0)
            except (InvalidHandshake, OSError):
                pass
            self.refused += not hello
            self.stop.wait(0.2)

    def events_after(self, moment: float, kind: str) -> int:
        return sum(1 for at, k in self.received if at > moment and k == kind)


@contextlib.contextmanager
def open_tab(server: LiveServer, org_id: object, cookie: str) -> Iterator[Dashboard]:
    tab = Dashboard(server, org_id, cookie)
    thread = threading.Thread(target=tab.run, daemon=True)
    thread.start()
    try:
        yield tab
    finally:
        tab.stop.set()
        thread.join(timeout=15)


def _world() -> tuple[object, object, str]:
    org = factories.organization("Outage")
    device = factories.device(factories.unit(org))
    client = Client()
    client.force_login(factories.member(org, role=Role.VIEWER))
    return org, device, client.cookies["sessionid"].value


def _records(server: LiveServer) -> list[dict[str, str]]:
    return [m.groupdict() for line in server.log.read_text().splitlines() if (m := _LINE.match(line))]


def _ended(server: LiveServer, logger: str) -> list[int]:
    return [int(m["failed"]) for r in _records(server) if r["logger"] == logger and (m := _ENDED.search(r["message"]))]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "tests.outage"]


def test_concurrent_failures_log_one_line_and_the_first_success_one_more_with_their_count(caplog):
    clock = Clock()
    outage = OutageLog(logging.getLogger("tests.outage"), "Thing", counted_in="things_total", clock=clock)
    threads, start = 8, threading.Barrier(8)

    def in_parallel(work) -> None:
        def run() -> None:
            start.wait()
            work()

        workers = [threading.Thread(target=run) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def fail() -> None:
        for _ in range(100):
            outage.failed("get", "refused")
            outage.skipped()

    in_parallel(fail)
    clock.now += QUIET_SECONDS
    in_parallel(outage.answered)
    outage.failed("set", "refused again")
    assert _lines(caplog) == [
        (
            "ERROR",
            "Get error: refused (Thing unavailable; further failures are counted in things_total, not logged, until it"
            " answers again)",
        ),
        ("WARNING", "Thing answering again: 800 operations failed over 0.0s, 800 more skipped"),
        (
            "ERROR",  # a new outage is a new line
            "Set error: refused again (Thing unavailable; further failures are counted in things_total, not logged,"
            " until it answers again)",
        ),
    ]


def test_failures_among_successes_are_one_outage_until_a_quiet_second(caplog):
    clock = Clock()
    outage = OutageLog(logging.getLogger("tests.outage"), "Thing", counted_in="things_total", clock=clock)
    for at, call in [(0.0, "failed"), (0.5, "answered"), (0.8, "failed"), (1.5, "answered"), (1.8, "answered")]:
        clock.now = 100.0 + at
        outage.failed("set", "OOM") if call == "failed" else outage.answered()
    assert [level for level, _ in _lines(caplog)] == ["ERROR", "WARNING"]
    assert _lines(caplog)[1][1] == "Thing answering again: 2 operations failed over 0.8s"


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_redis_outage_under_traffic_logs_one_line_when_it_starts_and_one_when_it_ends(transactional_db, tmp_path):
    org, device, cookie = _world()
    paths = [f"/api/orgs/{org.id}/stats", f"/api/orgs/{org.id}/units", f"/api/orgs/{org.id}/units/status"]
    redis_server = RedisProcess(tmp_path / "redis").start()
    server = start_daphne(tmp_path, extra_env={"REDIS_URL": redis_server.url})
    try:
        with (
            Load(server, cookie=cookie, paths=paths, clients=4) as load,
            UplinkStream(server, secret=org.webhook_secret, dev_eui=device.dev_eui) as uplinks,
            open_tab(server, org.id, cookie) as tab,
        ):
            started = time.monotonic()
            wait_for(lambda: tab.events_after(started, "reading") >= 3, timeout=20, what="live readings before")
            redis_server.kill()
            killed = time.monotonic()
            # Steady traffic into the outage: uplinks, polls and the tab's reconnects all fail Redis.
            wait_for(
                lambda: (
                    len(uplinks.after(killed)) >= 40
                    and len(load.between(killed, time.monotonic())) >= 100
                    and tab.refused >= 3
                ),
                timeout=30,
                what="traffic during the outage",
            )
            restarting = time.monotonic()
            redis_server.start()
            wait_for(lambda: tab.events_after(restarting, "reading") >= 3, timeout=20, what="live readings after")
            with contextlib.suppress(AssertionError):  # the assertions below say what is missing
                wait_for(
                    lambda: _ended(server, "stats.cache") and _ended(server, "realtime.broadcast"),
                    timeout=10,
                    what="both boundaries to log the end of the outage",
                )
        outage_uplinks = len(uplinks.after(killed)) - len(uplinks.after(restarting))
    finally:
        stop_all(server, redis_server)

    records = _records(server)
    report = "\n".join(f"{r['level']} {r['logger']} {r['message'][:200]}" for r in records if r["level"] != "INFO")
    print(report)
    assert [p.status for p in uplinks.posts if p.status != 200] == [], report
    assert [s for s in load.samples if s.status != 200] == [], report
    troubles = [(r["level"], r["logger"]) for r in records if r["level"] in {"WARNING", "ERROR", "CRITICAL"}]
    assert sorted(troubles) == [
        ("ERROR", "realtime.broadcast"),
        ("ERROR", "stats.cache"),
        ("WARNING", "realtime.broadcast"),
        ("WARNING", "stats.cache"),
    ], report
    assert "Traceback" not in server.log.read_text(), report
    assert 4503 in tab.closed_with, tab.closed_with  # told to come back later, and it did (live readings after)
    # The count carries what the lines no longer say one by one: every uplink of the outage failed
    # its send (the consumer's reconnects failed theirs too).
    [cache_failed], [layer_failed] = _ended(server, "stats.cache"), _ended(server, "realtime.broadcast")
    assert cache_failed >= 1 and layer_failed >= outage_uplinks - 2, report
