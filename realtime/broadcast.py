"""The one emitter: after commit, invalidate what the events change (recomputing the few keys
events refresh), then push them to browsers (queued: `send_loop`).

This module is the channel layer's boundary: its failures (the consumers' subscriptions and
receive loops included) are caught and counted here, logged once per outage, and never fail the
caller (the reading is already committed; browsers resync on reconnect).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from channels.layers import get_channel_layer
from django.db import DatabaseError, transaction
from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError

from dashboard_project.outage import OutageLog
from stats import cache, queries, services

from .events import Event
from .send_loop import QUEUE_MAX, SendLoop

logger = logging.getLogger("realtime.broadcast")

EVENTS_SENT = Counter("dashboard_events_sent_total", "Dashboard events sent to organization groups", ["event"])
BROADCAST_ERRORS = Counter(
    "dashboard_broadcast_errors_total", "Failures of emits and of the channel layer, by stage", ["stage"]
)
for _stage in ("invalidate", "refresh", "send", "subscribe", "unsubscribe", "receive"):
    BROADCAST_ERRORS.labels(_stage)  # exported at 0 from the start, so increase() sees the first error
EMIT_SECONDS = Histogram(
    "dashboard_emit_duration_seconds",
    "Duration of one committed change's cache work (invalidate, update, refresh) and queuing its send",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)

GROUP_MESSAGE_TYPE = "dashboard.events"
# A send is given this long, and is dropped when it waited this long behind others (a hung layer).
SEND_TIMEOUT_SECONDS = 1.0
_GROUP_NAME_OK = re.compile(r"^[A-Za-z0-9._-]{1,99}$")
# What channels_redis raises when its Redis fails (refused, reset, timed out).
LAYER_ERRORS = (RedisError, OSError)
_outage = OutageLog(logger, "channel layer", counted_in="dashboard_broadcast_errors_total{stage}")


_SEND_LOOP = SendLoop()


def send_loop_close(timeout: float = SEND_TIMEOUT_SECONDS + 1.0) -> None:
    """Make this process's queued sends and stop its send loop (`SendLoop.close`), once its
    requests are done."""
    _SEND_LOOP.close(timeout)


def sends_flush(timeout: float = SEND_TIMEOUT_SECONDS + 1.0) -> bool:
    """Wait until this process's queued sends have been made; False if `timeout` passed first."""
    return _SEND_LOOP.flush(timeout)


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
    """Apply what the events do to the cache, then send them, per organization.

    First one round trip invalidates every key they invalidate; then the keys a reading updates in
    place (its trend, its organization's compliance) are updated from their stored state, and the
    few keys an event refreshes or rebuilds, when they were cached, are recomputed or rebuilt from
    their kept state (`cache.recompute`, under the key's single-flight lock). Only then is the
    event queued for sending (the caller does not wait for the send): the dashboards refetching on
    it find every value exact and cached (sent first, the event arrives sooner, but the refetches
    it causes arrive during the update and wait or miss). A key one event invalidates and another
    updates is invalidated.
    """
    started = time.perf_counter()
    by_org: dict[uuid.UUID, list[Event]] = {}
    for event in events:
        by_org.setdefault(event.org_id, []).append(event)
    for org_id, org_events in by_org.items():
        if any(event.whole_organization for event in org_events):
            failed = cache.invalidate_org(org_id) is None  # covers every key the others name
            patches = {}
        else:
            failed, patches = _apply(org_events)
        if failed:  # logged by the cache boundary; the events go out anyway (the TTL bounds staleness)
            BROADCAST_ERRORS.labels("invalidate").inc()
        _send(org_id, org_events, patches)
    EMIT_SECONDS.observe(time.perf_counter() - started)


def _apply(events: list[Event]) -> tuple[bool, dict[str, dict[str, object]]]:
    """Invalidate, update in place, refresh or rebuild. Returns whether Redis failed (a value may be
    left stale: the invalidation alert watches it), and per unit the patches its reading's event
    carries (`queries.Query.patcher`: the page paints those values instead of refetching them)."""
    Effect = queries.Effect  # noqa: N806 - the catalogue's enum, named as there
    readings = [reading for event in events if (reading := event.reading()) is not None]
    effects: dict[cache.CacheKey, set[queries.Effect]] = {}
    for event in events:
        for key, effect in event.effects().items():
            if effect is Effect.UPDATE and not readings:  # an event built without its reading
                effect = Effect.INVALIDATE
            effects.setdefault(key, set()).add(effect)
    # A key one event invalidates is not refreshed, updated or rebuilt for another; one it
    # refreshes (state deleted) is not updated or rebuilt from its state.
    invalidated = {key for key, wanted in effects.items() if Effect.INVALIDATE in wanted}
    refreshed = {key for key, wanted in effects.items() if Effect.REFRESH in wanted} - invalidated
    rebuilt = {key for key, wanted in effects.items() if Effect.REBUILD in wanted} - invalidated - refreshed
    updated = {key for key, wanted in effects.items() if Effect.UPDATE in wanted} - invalidated - refreshed
    deleted = cache.invalidate_keys_present([*invalidated, *refreshed, *rebuilt], keep_state=rebuilt)
    if deleted is None:
        return True, {}
    # A rebuilt key's state takes the reading too, before the rebuild reads it.
    added = services.query_add_readings(updated, readings) if updated else services.Added({}, {})
    maintained = added.outcomes
    for key, outcome in maintained.items():
        if outcome is cache.Maintained.INVALIDATED:  # cached without a state, or its state missed a change
            _guarded("update", key, services.query_refresh, key)
    # Once each, if it was cached: a value before the values that are its fields.
    for key in sorted((refreshed | rebuilt) & set(deleted), key=services.refresh_order):
        _guarded("refresh", key, services.query_refresh, key)
    return cache.Maintained.FAILED in maintained.values(), added.patches


def _guarded(stage: str, key: cache.CacheKey, apply: Callable[..., object], *args: object, **kwargs: object) -> object:
    """A database failure while recomputing leaves the key deleted: the next reader's miss."""
    try:
        return apply(*args, **kwargs)
    except (DatabaseError, services.UnitNotFound) as exc:
        BROADCAST_ERRORS.labels(stage).inc()
        logger.error("%s of %s failed: %r", stage.capitalize(), key, exc)
        return None


def _send(org_id: uuid.UUID, events: list[Event], patches: dict[str, dict[str, object]]) -> None:
    """Queue the events' message to the organization's group (`SendLoop`: sent in order, the
    caller does not wait); a reading's event with its unit's `patches`."""
    layer = get_channel_layer()
    if layer is None:
        return
    group = group_name(org_id)
    messages = [
        event.message(patches.get(str(event.unit_id)) if event.change is queries.READING else None) for event in events
    ]
    message = {"type": GROUP_MESSAGE_TYPE, "events": messages}
    sent = [EVENTS_SENT.labels(str(event.type)) for event in events]

    async def send(waited: float) -> None:
        if waited > SEND_TIMEOUT_SECONDS:  # queued behind a hung layer: dropped, not sent late
            layer_failed("send", TimeoutError(f"queued {waited:.1f}s behind earlier sends"))
            return
        try:
            await asyncio.wait_for(layer.group_send(group, message), SEND_TIMEOUT_SECONDS)
        except Exception as exc:  # the channel layer's failures (Redis down, timeouts) stop here
            layer_failed("send", exc)
            return
        _outage.answered()
        for counter in sent:
            counter.inc()

    if not _SEND_LOOP.submit(send):
        layer_failed("send", OverflowError(f"{QUEUE_MAX} sends already queued"))


def layer_failed(stage: str, error: BaseException) -> None:
    """Count a channel-layer failure; only the first of an outage is logged."""
    BROADCAST_ERRORS.labels(stage).inc()
    _outage.failed(stage, f"{type(error).__name__}({error})")  # redis-py's repr drops the message


async def layer_call(stage: str, call: Awaitable[object]) -> bool:
    """Await a consumer's channel-layer call (group_add, group_discard); False when it failed."""
    try:
        await call
    except LAYER_ERRORS as exc:
        layer_failed(stage, exc)
        return False
    _outage.answered()
    return True
