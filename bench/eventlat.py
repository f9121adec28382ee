"""Event latency clients, as one separate process (bench/events.py starts it).

    python -m bench.eventlat --org-file org.json --daphne-a PA --daphne-b PB --gunicorn PG \
        --cookie S --samples 300

Phase 1: WebSocket subscribers on daphne A and daphne B (another instance sharing Redis) for one
organization. They stand for open dashboards, so first every unit's trend is loaded once, as the
page does: each reading's trend is then cached and is recomputed before its event is sent. An
uplink is POSTed to A; we time POST-sent -> the `reading` (or `unitUpdate`) message for that unit
and temperature on each socket, and POST-sent -> the POST's 200 (the event is sent before the
answer, after the commit: the answer bounds the server's part). Then the same with the uplink
POSTed to gunicorn (the recommended HTTP server), received on A.
Phase 2: a unit is toggled out of range and back; after each POST to gunicorn we poll
GET /api/orgs/<id>/stats on gunicorn until unitCounts.warning shows the change, timing
POST-sent -> first fresh answer, and counting stale answers to requests sent after the POST's 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect

from bench import common
from bench.client import Connection
from bench.loadgen import summarize

TIMEOUT = 5.0
SPACING = 0.02  # between samples: latency, not throughput, is measured here


async def connect_dashboard(port: int, org_id: str, cookie: str, timeout: float = TIMEOUT):
    """The page's WebSocket for one organization, past its `hello`. No keepalive pings: a browser
    sends none, and on a saturated machine an answer late by 20 s closed the socket mid-run."""
    origin = f"http://127.0.0.1:{port}"
    ws = await connect(
        f"ws://127.0.0.1:{port}/ws/orgs/{org_id}/", origin=origin,
        additional_headers={"Cookie": f"sessionid={cookie}"}, open_timeout=timeout, ping_interval=None,
    )  # fmt: skip
    hello = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    if hello.get("type") != "hello":
        await ws.close()
        raise RuntimeError(f"unexpected first message on :{port}: {hello}")
    return ws


async def subscribe(port: int, org_id: str, cookie: str) -> tuple[object, asyncio.Queue]:
    ws = await connect_dashboard(port, org_id, cookie)
    queue: asyncio.Queue = asyncio.Queue()

    async def pump() -> None:
        async for raw in ws:
            queue.put_nowait((time.perf_counter(), json.loads(raw)))

    asyncio.get_running_loop().create_task(pump())
    return ws, queue


def _matches(message: dict, unit_id: str, temperature: float) -> bool:
    data = message.get("data") or {}
    if message.get("type") == "reading":
        value = data.get("temperature")
    elif message.get("type") == "unitUpdate":
        value = data.get("lastTemperature")
    else:
        return False
    return data.get("unitId") == unit_id and value is not None and abs(value - temperature) < 1e-6


async def wait_for(queue: asyncio.Queue, unit_id: str, temperature: float) -> float | None:
    deadline = time.perf_counter() + TIMEOUT
    while (left := deadline - time.perf_counter()) > 0:
        try:
            received, message = await asyncio.wait_for(queue.get(), left)
        except TimeoutError:
            return None
        if _matches(message, unit_id, temperature):
            return received
    return None


async def phase_ws(args, org: common.Org, post_port: int, receivers: dict[str, asyncio.Queue], f_cnt: int) -> dict:
    conn = Connection("127.0.0.1", post_port, headers={"Content-Type": "application/json"})
    latencies: dict[str, list[float]] = {name: [] for name in receivers}
    answered: list[float] = []
    lost = dict.fromkeys(receivers, 0)
    units = [k for k in range(len(org.units)) if k % 10 != 9]  # leave the toggled unit alone
    for i in range(args.samples):
        k = units[i % len(units)]
        low, high = org.ranges[k]
        temperature = round((low + high) / 2 + (i % 40 - 20) * 0.01, 2)
        body = common.uplink_body(org.devices[k], temperature, f_cnt + i)
        sent = time.perf_counter()
        response = await conn.request("POST", "/api/webhooks/ttn", body=body, headers={"X-Webhook-Secret": org.secret})
        answered.append(time.perf_counter() - sent)
        if response.status != 200:
            raise RuntimeError(f"uplink refused: {response.status} {response.body[:200]!r}")
        for name, queue in receivers.items():
            received = await wait_for(queue, org.units[k], temperature)
            if received is None:
                lost[name] += 1
            else:
                latencies[name].append(received - sent)
        await asyncio.sleep(SPACING)
    conn.close()
    rows = {name: {**summarize(values, 1.0), "lost": lost[name]} for name, values in latencies.items()}
    return {**rows, "answered": summarize(answered, 1.0)}


async def phase_stats(args, org: common.Org, f_cnt: int) -> dict:
    k = next(k for k in range(len(org.units)) if k % 10 == 9)
    low, high = org.ranges[k]
    poster = Connection("127.0.0.1", args.gunicorn, headers={"Content-Type": "application/json"})
    reader = Connection("127.0.0.1", args.gunicorn, headers={"Cookie": f"sessionid={args.cookie}"})
    path = f"/api/orgs/{org.id}/stats"

    async def warning() -> int:
        response = await reader.request("GET", path)
        return json.loads(response.body)["unitCounts"]["warning"]

    # Settle first: whatever state an earlier scenario left the unit in, an in-range reading ends it.
    body = common.uplink_body(org.devices[k], (low + high) / 2, f_cnt)
    await poster.request("POST", "/api/webhooks/ttn", body=body, headers={"X-Webhook-Secret": org.secret})
    latencies: list[float] = []
    stale_after_ack = 0
    polls = 0
    for i in range(1, args.stats_samples + 1):
        before = await warning()
        hot = i % 2 == 1
        temperature = high + 2.0 if hot else (low + high) / 2
        body = common.uplink_body(org.devices[k], temperature, f_cnt + i)
        sent = time.perf_counter()
        post = asyncio.ensure_future(
            poster.request("POST", "/api/webhooks/ttn", body=body, headers={"X-Webhook-Secret": org.secret})
        )
        fresh_at = None
        while fresh_at is None and time.perf_counter() - sent < TIMEOUT:
            acked = post.done()
            value = await warning()
            polls += 1
            if value != before:
                fresh_at = time.perf_counter()
            elif acked:
                stale_after_ack += 1
        response = await post
        if response.status != 200 or fresh_at is None:
            raise RuntimeError(f"stats never changed after uplink ({response.status})")
        latencies.append(fresh_at - sent)
        await asyncio.sleep(SPACING)
    poster.close()
    reader.close()
    return {**summarize(latencies, 1.0), "staleAnswersAfterAck": stale_after_ack, "polls": polls}


async def open_dashboard(args, org: common.Org) -> None:
    """Load every unit's trend once, as the dashboard page does: the trends are then cached."""
    reader = Connection("127.0.0.1", args.gunicorn, headers={"Cookie": f"sessionid={args.cookie}"})
    for unit in org.units:
        response = await reader.request("GET", f"/api/orgs/{org.id}/units/{unit}/trends")
        if response.status != 200:
            raise RuntimeError(f"trend refused: {response.status} {response.body[:200]!r}")
    reader.close()


async def run(args) -> dict:
    with open(args.org_file) as handle:
        org = common.orgs_from_json(handle.read())[0]
    await open_dashboard(args, org)
    _, queue_a = await subscribe(args.daphne_a, org.id, args.cookie)
    _, queue_b = await subscribe(args.daphne_b, org.id, args.cookie)
    f_cnt = args.f_cnt_base
    via_daphne = await phase_ws(args, org, args.daphne_a, {"sameInstance": queue_a, "otherInstance": queue_b}, f_cnt)
    via_gunicorn = await phase_ws(args, org, args.gunicorn, {"gunicornToDaphne": queue_a}, f_cnt + args.samples)
    stats = await phase_stats(args, org, f_cnt + 2 * args.samples)
    daphne_answered, gunicorn_answered = via_daphne.pop("answered"), via_gunicorn.pop("answered")
    return {
        **via_daphne, **via_gunicorn, "uplinkToFreshStats": stats,
        "daphneAnswered": daphne_answered, "gunicornAnswered": gunicorn_answered,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="uplink -> WebSocket and uplink -> fresh stats latency")
    parser.add_argument("--org-file", required=True)
    parser.add_argument("--daphne-a", type=int, required=True)
    parser.add_argument("--daphne-b", type=int, required=True)
    parser.add_argument("--gunicorn", type=int, required=True)
    parser.add_argument("--cookie", required=True)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--stats-samples", type=int, default=40)
    parser.add_argument("--f-cnt-base", type=int, default=0)
    args = parser.parse_args(argv)
    json.dump(asyncio.run(run(args)), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
