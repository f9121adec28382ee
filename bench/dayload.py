"""The realistic day's clients, as one separate process: dashboards polling and TTN posting uplinks.

    python -m bench.dayload --orgs-file orgs.json --dash-port P --ingest-port Q --ws-port W \
        --cookie S --clients 50 --poll 3 --duration 60 --warmup 15 --uplink-rate 83

Dashboard client i watches organization i mod N (so 2N clients put two dashboards on every
organization) and one of its units; every `--poll` seconds it
loads the dashboard: the five cached endpoints (stats, units/status, alerts/count, devices/online,
the unit's trends), one after another like the page does. Each client also holds the page's
WebSocket (`--ws-port`, daphne) and refetches on every event what `dashboard.js` refetches, on
its own connection, as a browser has several: the refetch map the dashboard page serves to
`dashboard.js` (the server's query catalogue), read from the page once; e.g. an alert event, the
stats and the alert list. The units list is refetched only on the events that do not carry the
unit's card (dashboard.js paints readings and unit updates from the event), and a reading's trend
(any unit of the organization, the page shows them all) and the stats only when its event carries
no patch for them or the patch does not follow the last one painted (`Patches`; with
`--patched-always`, never). The simulator posts uplinks at
`--uplink-rate` per second, every device in turn (one per unit per minute at the natural rate).
Excursions: every tenth unit leaves its range for 3 minutes in every 60 (its own phase), which
drives the state machine through excursion -> restoring -> ok and its invalidations.
Before the clock starts, every device posts one in-range reading and every trend is loaded
once (see preroll). With `--check-port` (a server of the same settings as `--dash-port`) and
`--oracle-port` (the same code, every cache off), answered uplinks are also followed by the
stale-answer check of bench/freshness.py. Prints
PREROLL_DONE, then one JSON line with what happened after the warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time

import uvloop
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench import common
from bench.client import Connection
from bench.eventlat import connect_dashboard
from bench.freshness import Checker
from bench.loadgen import summarize
from stats.windows import BUCKET

UPLINK_SENDERS = 8
WS_TIMEOUT = 10.0

_CONFIG = re.compile(r'<script id="dashboard-config" type="application/json">(.*?)</script>', re.S)
# Events whose data carries what a unit's card shows: dashboard.js paints them, no units list.
_PAINTED = {"reading", "unitUpdate"}


async def page_refetch(port: int, cookie: str, org_id: str) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """What dashboard.js fetches for each event type ("{unit}": the event's unit), and the paths
    among those an event's data may carry a patch for (painted from the event instead), each with
    its query's name, from the configuration the dashboard page serves it."""
    conn = Connection("127.0.0.1", port, headers={"Cookie": f"sessionid={cookie}"})
    response = await conn.request("GET", f"/orgs/{org_id}/")
    conn.close()
    match = _CONFIG.search(response.body.decode()) if response.status == 200 else None
    if match is None:
        raise RuntimeError(f"no dashboard configuration on /orgs/{org_id}/ (HTTP {response.status})")
    config = json.loads(match.group(1))
    refetch = {
        event: [f"/{config['queries'][name]}" for name in names if not (name == "units" and event in _PAINTED)]
        for event, names in config["refetch"].items()
    }
    patched = {
        event: {f"/{config['queries'][name]}": name for name in names} for event, names in config["patches"].items()
    }
    return refetch, patched


class Patches:
    """The page's rule for an event's patches (dashboard.js paint), per answer the page keeps (the
    stats, each unit's trend): painted when the patch follows the last one painted there (its
    "after" is that one's "at"), else the answer is fetched again. The page holds every answer from
    its opening, so an answer not yet seen takes its first patch."""

    def __init__(self, always: bool) -> None:
        self.always = always  # the floor's day: every patch applies (its cache holds nothing to patch)
        self.at: dict[tuple[str, str | None], int] = {}

    def painted(self, event: dict, name: str, unit_scoped: bool) -> bool:
        if self.always:
            return True
        data = event.get("data") or {}
        patch = (data.get("patches") or {}).get(name)
        if patch is None:
            return False
        copy = (name, data.get("unitId") if unit_scoped else None)
        last = self.at.get(copy)
        self.at[copy] = patch["at"]
        return last is None or patch["after"] == last


def _temperature(unit_index: int, low: float, high: float, now: float) -> float:
    minute = now / 60
    # Phases spread over the hour: the n-th excursion unit starts at minute n mod 60, so every
    # minute of the hour sees the same number of excursions begin and end. (7 * unit_index for
    # unit_index = 10, 20, ... gave only six phases, ten minutes apart: whether a 2-minute window
    # met one of those bursts or none depended on the wall clock.)
    if unit_index % 10 == 0 and (minute + unit_index // 10) % 60 < 3:
        return high + 2.0
    return (low + high) / 2 + random.uniform(-0.4, 0.4)


def _dashboard_connection(args: argparse.Namespace) -> Connection:
    """A signed-in page's connection to the dashboard server (gunicorn: one request each)."""
    return Connection(
        "127.0.0.1", args.dash_port, headers={"Cookie": f"sessionid={args.cookie}"}, close_after_request=True
    )


def _webhook_connection(args: argparse.Namespace) -> Connection:
    """TTN's connection to the ingest server (gunicorn: one request each)."""
    return Connection(
        "127.0.0.1", args.ingest_port, headers={"Content-Type": "application/json"}, close_after_request=True
    )


def _quarter_hour_in(start: float, seconds: float) -> float | None:
    bucket = BUCKET.total_seconds()
    boundary = (start // bucket + 1) * bucket
    return round(boundary - start, 1) if boundary < start + seconds else None


async def preroll(args: argparse.Namespace, orgs: list[common.Org]) -> None:
    """Before the clock starts: one in-range uplink per device, which settles the dataset's
    offline and out-of-range units (their first readings would otherwise invalidate everything
    at once); then every unit's trend loaded once, as the open pages have them."""
    jobs = [(org, k) for org in orgs for k in range(len(org.units))]

    async def sender() -> None:
        conn = _webhook_connection(args)
        while jobs:
            org, k = jobs.pop()
            low, high = org.ranges[k]
            body = common.uplink_body(org.devices[k], (low + high) / 2, args.f_cnt_base)
            await conn.request("POST", "/api/webhooks/ttn", body=body, headers={"X-Webhook-Secret": org.secret})
        conn.close()

    await asyncio.gather(*(sender() for _ in range(UPLINK_SENDERS)))

    # The page loads every unit's trend when it opens (dashboard.js resync): each organization's
    # trends are then cached, as they are while any dashboard of it is open.
    trends = [f"/api/orgs/{org.id}/units/{unit}/trends" for org in orgs for unit in org.units]

    async def loader() -> None:
        conn = _dashboard_connection(args)
        while trends:
            response = await conn.request("GET", trends.pop())
            if response.status != 200:
                raise RuntimeError(f"trend refused: {response.status} {response.body[:200]!r}")
        conn.close()

    await asyncio.gather(*(loader() for _ in range(UPLINK_SENDERS)))


async def run(args: argparse.Namespace, orgs: list[common.Org]) -> dict[str, object]:
    await preroll(args, orgs)
    print("PREROLL_DONE", flush=True)
    started = time.perf_counter()
    measure_from = started + args.warmup
    stop_at = measure_from + args.duration
    loads: list[float] = []
    load_windows: dict[int, list[float]] = {}  # the loads sent in each 5 s of the measured window
    load_errors: dict[str, int] = {}
    uplinks: list[float] = []
    uplink_statuses: dict[str, int] = {}
    lag: list[float] = []
    refetches: list[float] = []  # event received -> its refetches answered
    events_received = [0]
    dash_answered = [0]  # the dashboard server's answers within the measured window

    def answered(response_status: int) -> None:
        if measure_from <= time.perf_counter() < stop_at:
            dash_answered[0] += 1
        if response_status != 200:
            load_errors[str(response_status)] = load_errors.get(str(response_status), 0) + 1

    # An uplink posted -> its reading event at the first of its organization's dashboards. A
    # unit posts about once a minute, so its last send is the one an event answers.
    posted: dict[str, float] = {}
    uplink_to_event: list[float] = []

    # The page is the project's own (the dashboard server may be the floor, which serves none).
    refetch, patched = await page_refetch(args.ws_port, args.cookie, orgs[0].id)
    refetch["orgChanged"] = ["/stats", "/units", "/alerts"]  # dashboard.js resyncs on it

    async def follow_events(org: common.Org) -> None:
        """The page's WebSocket: each event's refetches, as dashboard.js does them."""
        try:
            ws = await connect_dashboard(args.ws_port, org.id, args.cookie, WS_TIMEOUT)
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
            # A server too busy to answer the handshake in time (the cache-off day): counted, and
            # this page polls without events, rather than the whole bench run failing.
            name = f"websocket not opened ({type(exc).__name__})"
            load_errors[name] = load_errors.get(name, 0) + 1
            return
        patches = Patches(args.patched_always)
        async with ws:
            conn = _dashboard_connection(args)
            while time.perf_counter() < stop_at:
                try:
                    raw = await asyncio.wait_for(ws.recv(), max(0.01, stop_at - time.perf_counter()))
                except TimeoutError:
                    break
                except ConnectionClosed:  # counted, and the day goes on without this page's events
                    load_errors["websocket closed"] = load_errors.get("websocket closed", 0) + 1
                    break
                received = time.perf_counter()
                event = json.loads(raw)  # one event per frame (realtime/consumers.py)
                unit = (event.get("data") or {}).get("unitId")
                if event.get("type") == "reading" and (sent := posted.pop(unit, None)) is not None:
                    uplink_to_event.append(received - sent)
                kind = event.get("type")
                painted = patched.get(kind, {})
                paths = [
                    p.format(unit=unit)
                    for p in refetch.get(kind, [])
                    if (unit or "{" not in p) and not (p in painted and patches.painted(event, painted[p], "{" in p))
                ]
                for path in paths:
                    answered((await conn.request("GET", f"/api/orgs/{org.id}{path}")).status)
                if received >= measure_from:
                    events_received[0] += 1
                    if paths:
                        refetches.append(time.perf_counter() - received)
            conn.close()

    async def dashboard(i: int) -> None:
        org = orgs[i % len(orgs)]
        unit = org.units[(i // len(orgs)) % len(org.units)]
        paths = [
            f"/api/orgs/{org.id}/stats",
            f"/api/orgs/{org.id}/units/status",
            f"/api/orgs/{org.id}/alerts/count",
            f"/api/orgs/{org.id}/devices/online",
            f"/api/orgs/{org.id}/units/{unit}/trends",
        ]
        follower = asyncio.get_running_loop().create_task(follow_events(org))
        conn = _dashboard_connection(args)
        next_at = started + random.uniform(0, args.poll)
        while True:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            if time.perf_counter() >= stop_at:
                break
            sent = time.perf_counter()
            for path in paths:
                answered((await conn.request("GET", path)).status)
            if sent >= measure_from:
                loads.append(time.perf_counter() - sent)
                load_windows.setdefault(int((sent - measure_from) // 5), []).append(loads[-1])
            next_at += args.poll
        conn.close()
        await follower

    devices = [(org, k) for k in range(max(len(o.units) for o in orgs)) for org in orgs if k < len(org.units)]
    checker = None
    if args.check_port:
        checker = Checker(check_port=args.check_port, oracle_port=args.oracle_port, cookie=args.cookie)
    queue: asyncio.Queue[int] = asyncio.Queue()

    async def schedule() -> None:
        n = 0
        while True:
            due = started + n / args.uplink_rate
            if due >= stop_at:
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await queue.put(n)
            n += 1
        for _ in range(UPLINK_SENDERS):
            await queue.put(-1)

    async def sender() -> None:
        conn = _webhook_connection(args)
        while (n := await queue.get()) >= 0:
            if time.perf_counter() >= stop_at:
                continue  # a backlog left at the end is not measured: a server that fell behind must not hold the run
            org, k = devices[n % len(devices)]
            due = started + n / args.uplink_rate
            now = time.time()
            low, high = org.ranges[k]
            # The unit's index among all units, so that excursion phases differ between organizations
            # (by its index within the organization, every organization's unit 10 left its range at once).
            unit_index = n % len(devices) + 1
            body = common.uplink_body(org.devices[k], _temperature(unit_index, low, high, now), args.f_cnt_base + 1 + n)
            sent = time.perf_counter()
            if sent >= measure_from:
                posted[org.units[k]] = sent
            response = await conn.request("POST", "/api/webhooks/ttn", body=body,
                                          headers={"X-Webhook-Secret": org.secret})  # fmt: skip
            if checker is not None and response.status == 200:
                checker.uplink_answered(org, org.units[k])
            if sent >= measure_from:
                uplinks.append(time.perf_counter() - sent)
                lag.append(sent - due)
                uplink_statuses[str(response.status)] = uplink_statuses.get(str(response.status), 0) + 1
        conn.close()

    cpu_seconds = [0.0]

    async def meter() -> None:
        """This process's own CPU over the measured window (a client starved of CPU reports its
        own waiting as the servers' latency)."""
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        start = time.process_time()
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        cpu_seconds[0] = time.process_time() - start

    checking = [checker.run(measure_from=measure_from, stop_at=stop_at)] if checker else []
    await asyncio.gather(
        meter(),
        schedule(),
        *(sender() for _ in range(UPLINK_SENDERS)),
        *(dashboard(i) for i in range(args.clients)),
        *checking,
    )
    return {
        **({"freshness": checker.counts} if checker else {}),
        "loadLatency": summarize(loads, args.duration),
        # Whether a P99 is a steady state or a few bad seconds: the P99 of each 5 s, in order.
        "loadP99Per5s": [summarize(load_windows[w], 5.0)["p99_ms"] for w in sorted(load_windows)],
        # Seconds into the measured window of a quarter-hour boundary, where every trend and stats
        # value expires at once (their oldest bucket leaves the 24 h window); None if none fell in it.
        "quarterHourAt": _quarter_hour_in(time.time() - (time.perf_counter() - measure_from), args.duration),
        "loadErrors": load_errors,
        "eventsReceived": events_received[0],
        "dashRequestsAnswered": dash_answered[0],
        "eventRefetches": summarize(refetches, args.duration),
        "uplinkToEvent": summarize(uplink_to_event, args.duration),
        "uplinks": summarize(uplinks, args.duration),
        "uplinkStatuses": uplink_statuses,
        "uplinkScheduleLagP99Ms": summarize(lag, args.duration)["p99_ms"],
        "cpuSeconds": round(cpu_seconds[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="realistic-day clients: dashboards polling, uplinks posting")
    parser.add_argument("--orgs-file", required=True)
    parser.add_argument("--dash-port", type=int, required=True)
    parser.add_argument("--ingest-port", type=int, required=True)
    parser.add_argument("--ws-port", type=int, required=True, help="daphne, for the dashboards' WebSockets")
    parser.add_argument("--cookie", required=True)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--poll", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--uplink-rate", type=float, required=True, help="uplinks per second, all devices")
    parser.add_argument("--f-cnt-base", type=int, default=0, help="first frame counter (distinct per run)")
    parser.add_argument("--patched-always", action="store_true",
                        help="paint every patchable query from its event (the floor's day: its cache has no trends "
                             "to patch; its pages ask what ours ask when every patch applies)")  # fmt: skip
    parser.add_argument("--check-port", type=int, help="stale-answer check through this server (bench/freshness.py)")
    parser.add_argument("--oracle-port", type=int, help="the check's fresh computations: this server, caches off")
    args = parser.parse_args(argv)
    if bool(args.check_port) != bool(args.oracle_port):
        parser.error("--check-port and --oracle-port go together")
    with open(args.orgs_file) as handle:
        orgs = common.orgs_from_json(handle.read())
    # uvloop: the clients share the machine's cores with the servers they measure, and libuv's loop
    # costs them less CPU than asyncio's own.
    json.dump(uvloop.run(run(args, orgs)), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
