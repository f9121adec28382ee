"""The one emitter: after commit, invalidate what the events change (recomputing the few keys
events refresh), then push them to browsers.

This module is the channel layer's boundary: its failures are caught, counted and logged here and
never fail the caller (the reading is already committed; browsers resync on reconnect).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence

from channels.layers import get_channel_layer
from django.db import DatabaseError, transaction
from prometheus_client import Counter, Histogram

from stats import cache, services

from .events import Event

logger = logging.getLogger("realtime.broadcast")

EVENTS_SENT = Counter("dashboard_events_sent_total", "Dashboard events sent to organization groups", ["event"])
BROADCAST_ERRORS = Counter(
    "dashboard_broadcast_errors_total", "Failures while emitting events (invalidate or send)", ["stage"]
)
for _stage in ("invalidate", "refresh", "send"):
    BROADCAST_ERRORS.labels(_stage)  # exported at 0 from the start, so increase() sees the first error
EMIT_SECONDS = Histogram(
    "dashboard_emit_duration_seconds",
    "Invalidate-then-send duration of one committed change",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)

GROUP_MESSAGE_TYPE = "dashboard.events"
# A hung channel layer must not hold an ingestion request for long.
SEND_TIMEOUT_SECONDS = 1.0
_GROUP_NAME_OK = re.compile(r"^[A-Za-z0-9._-]{1,99}$")


class _SendLoop:
    """One event loop per process, on its own thread, that every send of this process runs on.

    `async_to_sync` from a thread without a loop (a gunicorn worker) runs each call on a new
    loop, and channels_redis keeps its connections per loop: every send paid a new Redis
    connection. Under daphne it ran on the server's own loop, behind the requests and frames
    that loop was serving. Here the connections stay open and the loop does nothing else.
    A forked child starts its own (a thread does not survive a fork).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def run(self, coroutine: Coroutine[object, object, None], timeout: float) -> None:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._get())
        try:
            future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def _get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="channel-layer-send", daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop

    def close(self, timeout: float) -> None:
        """Stop the thread and close the channel layer's connections of its loop (the process is
        stopping; call it once nothing sends any more). A later send would start a new loop."""
        with self._lock:
            loop, thread, ours = self._loop, self._thread, self._pid == os.getpid()
            self._loop = self._thread = None
        if loop is None or thread is None or not ours:  # a forked child never ran its parent's thread
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("The channel-layer send loop did not stop within %.1fs", timeout)
            return
        loop.close()  # channels_redis closes the Redis connections it opened on this loop here


_SEND_LOOP = _SendLoop()


def send_loop_close(timeout: float = SEND_TIMEOUT_SECONDS + 1.0) -> None:
    """Stop this process's send loop (`_SendLoop.close`), once its requests are done."""
    _SEND_LOOP.close(timeout)


def group_name(org_id: uuid.UUID | str) -> str:
    name = f"org.{uuid.UUID(str(org_id))}"
    assert _GROUP_NAME_OK.match(name)
    return name


def emit_on_commit(events: Sequence[Event]) -> None:
    """Emit `events` once the current transaction commits (immediately outside one)."""
    if events:
        batch = list(events)
        transaction.on_commit(lambda: emit(batch))


def emit(events: Sequence[Event]) -> None:
    """Invalidate every key the events change (one round trip), then send them, per organization.

    The few keys events refresh (a reading's trend, when cached) are recomputed between the two
    (`cache.recompute`, under the key's single-flight lock): a poll that misses meanwhile waits for that one recompute
    instead of running its own, and the dashboards refetching on the event find it cached.
    (Sending first saved the event ~7 ms, but on loopback nearly every refetch then arrived
    during the recompute and waited: the realistic day's trend hit rate fell to 0.69.)
    """
    started = time.perf_counter()
    by_org: dict[uuid.UUID, list[Event]] = {}
    for event in events:
        by_org.setdefault(event.org_id, []).append(event)
    for org_id, org_events in by_org.items():
        refreshers: dict[str, Callable[[], None]] = {}
        if any(event.whole_organization for event in org_events):
            deleted = cache.invalidate_org(org_id)  # covers every key the others name; nothing to refresh
        else:
            deleted = cache.invalidate_keys_present([key for event in org_events for key in event.cache_keys()])
            if deleted is not None:
                refreshers = _refreshers(org_events, set(deleted))
        if deleted is None:
            BROADCAST_ERRORS.labels("invalidate").inc()
            logger.error("Invalidation failed for org %s; sending events anyway (TTL bounds staleness)", org_id)
        _refresh(refreshers)
        _send(org_id, org_events)
    EMIT_SECONDS.observe(time.perf_counter() - started)


def _refreshers(events: list[Event], deleted: set[str]) -> dict[str, Callable[[], None]]:
    """The refreshable keys the invalidation deleted, each once: units nobody watches cost nothing."""
    return {key: refresh for event in events for key, refresh in event.refreshers().items() if key in deleted}


def _refresh(refreshers: dict[str, Callable[[], None]]) -> None:
    """Recompute each key; a failure leaves it deleted, i.e. the next reader's miss."""
    for key, refresh in refreshers.items():
        try:
            refresh()
        except (DatabaseError, services.UnitNotFound) as exc:
            BROADCAST_ERRORS.labels("refresh").inc()
            logger.error("Refresh of %s failed: %r", key, exc)


def _send(org_id: uuid.UUID, events: list[Event]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": GROUP_MESSAGE_TYPE, "events": [event.message() for event in events]}

    async def send() -> None:
        await asyncio.wait_for(layer.group_send(group_name(org_id), message), SEND_TIMEOUT_SECONDS)

    try:
        # The outer bound only matters if the loop itself is stuck; wait_for bounds the send.
        _SEND_LOOP.run(send(), SEND_TIMEOUT_SECONDS + 1.0)
    except Exception as exc:  # the channel layer's failures (Redis down, timeouts) stop here
        BROADCAST_ERRORS.labels("send").inc()
        logger.error("Broadcast to org %s failed: %r", org_id, exc)
        return
    for event in events:
        EVENTS_SENT.labels(str(event.type)).inc()
