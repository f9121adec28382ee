"""Stale answers: what a dashboard is told right after an uplink, against a fresh computation.

Part of the realistic day's clients (bench/dayload.py, `--check-port`). Whenever an uplink has
been answered (its reading committed and its events sent), and at most once per INTERVAL_SECONDS,
the checker takes the latest answered uplink and asks for its unit's trend and its
organization's stats, one request after another:

  F0  the oracle: a server of the same code with every cache off, so a fresh computation;
  C   the contender, through a server of its own (same settings and Redis as the dashboards');
  F1  the oracle again (only when C differs from F0).

C is fresh when it equals F0 or F1 (`lastUpdated`, the computation's own time, ignored). It is
**stale** when F0 and F1 agree and C differs from them: the database did not change while C
was asked (both fresh computations saw the same rows) and C still said something else, i.e.
something older than the uplink it follows. When F0 and F1 differ, another uplink of the
organization committed meanwhile, C may legitimately show either state or one between, and
the answer is counted as **ambiguous**, not stale.

Nothing here can make the count zero by construction: C is the contender's own answer, and
for stats the fields that differed are counted (`compliancePercentage`, the 24 h in-range
share, moves with every reading; the counts move only with state changes).
"""

from __future__ import annotations

import asyncio
import json
import time

from bench import common
from bench.client import Connection

IGNORED = ("lastUpdated",)
# At most one check (two endpoints, three to six requests) per this many seconds: enough answers
# to count in a minute, little load beside the day's own on a 2-core machine.
INTERVAL_SECONDS = 0.5


def _comparable(body: bytes) -> object:
    value = json.loads(body)
    if isinstance(value, dict):
        for name in IGNORED:
            value.pop(name, None)
    return value


def _differing_fields(answer: object, fresh: object) -> list[str]:
    if isinstance(answer, dict) and isinstance(fresh, dict):
        return sorted(name for name in answer.keys() | fresh.keys() if answer.get(name) != fresh.get(name))
    return ["(whole answer)"]


class Checker:
    def __init__(self, *, check_port: int, oracle_port: int, cookie: str) -> None:
        headers = {"Cookie": f"sessionid={cookie}"}
        self._contender = Connection("127.0.0.1", check_port, headers=headers, close_after_request=True)
        self._oracle = Connection("127.0.0.1", oracle_port, headers=headers, close_after_request=True)
        self._latest: tuple[common.Org, str] | None = None
        self._answered = asyncio.Event()
        self.counts = {
            kind: {"compared": 0, "stale": 0, "ambiguous": 0, "errors": 0, "staleFields": {}, "staleAt": []}
            for kind in ("trend", "stats")
        }

    def uplink_answered(self, org: common.Org, unit_id: str) -> None:
        self._latest = (org, unit_id)
        self._answered.set()

    async def run(self, *, measure_from: float, stop_at: float) -> None:
        while True:
            try:
                await asyncio.wait_for(self._answered.wait(), max(0.01, stop_at - time.perf_counter()))
            except TimeoutError:
                break
            if time.perf_counter() >= stop_at:
                break
            self._answered.clear()
            org, unit_id = self._latest
            started = time.perf_counter()
            counting = started >= measure_from
            await self._check("trend", f"/api/orgs/{org.id}/units/{unit_id}/trends", counting)
            await self._check("stats", f"/api/orgs/{org.id}/stats", counting)
            await asyncio.sleep(max(0.0, started + INTERVAL_SECONDS - time.perf_counter()))
        self._contender.close()
        self._oracle.close()

    async def _check(self, kind: str, path: str, counting: bool) -> None:
        first = await self._oracle.request("GET", path)
        answer = await self._contender.request("GET", path)
        answered = first.status == answer.status == 200
        # F1 only when C differs from F0 (the usual case needs none: half the oracle's load).
        second = None
        if answered and _comparable(answer.body) != _comparable(first.body):
            second = await self._oracle.request("GET", path)
        if not counting:
            return
        counts = self.counts[kind]
        if not answered or (second is not None and second.status != 200):
            counts["errors"] += 1
            return
        counts["compared"] += 1
        if second is None:
            return
        fresh_before, given, fresh_after = (_comparable(r.body) for r in (first, answer, second))
        if given == fresh_after:
            return
        if fresh_before != fresh_after:
            counts["ambiguous"] += 1
            return
        counts["stale"] += 1
        # When (UTC): a stale answer just after a 15-minute boundary is a window that moved between
        # the update and the oracle's computation, not a missed change.
        counts["staleAt"].append(time.strftime("%H:%M:%S", time.gmtime()))
        for name in _differing_fields(given, fresh_before):
            counts["staleFields"][name] = counts["staleFields"].get(name, 0) + 1
