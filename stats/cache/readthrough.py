"""Cache-aside reads: read-through with single flight and the stale-set guard, and recompute.

- Stale sets: before computing, a reader takes a token (the organization's generation and the
  key's generation). Every invalidation bumps the generation of what it deletes; the write is a
  compare-and-set in Lua that stores nothing if a generation moved meanwhile (memcache leases),
  and moves the key's generation when it stores a state (an update in place that read the key
  before then reads it again: `maintain`).
- Single flight: on a miss one reader takes a short lock and computes; the others poll for its
  value for a bounded time, then compute themselves rather than hang.

Values are response-ready JSON bytes, so a hit and a miss return byte-identical bodies.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from . import ahead, scripts
from .boundary import CacheUnavailable, is_enabled, redis_call
from .invalidation import GENERATION_TTL_SECONDS
from .keys import CacheKey, index_key, key_generation_key, lock_key, org_generation_key, state_key
from .lane import near_forget
from .metrics import (
    CACHE_HIT,
    CACHE_MISS,
    CACHE_REBUILT,
    CACHE_RECOMPUTE,
    CACHE_SINGLEFLIGHT_WAIT,
    CACHE_STALE_SET_REFUSED,
)
from .ttl import key_ttl_ms

logger = logging.getLogger("stats.cache")

# Single flight: the lock outlives a slow aggregate; waiters give up well before a user would.
LOCK_TTL_MS = 10_000
LOCK_WAIT_SECONDS = 2.0
LOCK_POLL_SECONDS = 0.005


def get(key: CacheKey) -> bytes | None:
    """The cached bytes, or None on a miss, when disabled, or when Redis fails."""
    if not is_enabled():
        return None
    try:
        with redis_call("get") as client:
            value = client.get(key)
    except CacheUnavailable:
        return None
    return value


def set(key: CacheKey, value: bytes, ttl: int | None = None) -> bool:  # noqa: A001 - the cache's public verbs: get, set, delete
    """Store unconditionally with a fresh TTL (every set resets the TTL), without a state."""
    if not is_enabled():
        return False
    org_id = key.org_id
    try:
        with redis_call("set") as client:
            scripts.run(
                client,
                scripts.CAS_SET,
                [key, index_key(org_id) if org_id else "", state_key(key), key_generation_key(key)],
                [value, key_ttl_ms(key, ttl), "", GENERATION_TTL_SECONDS],
            )
    except CacheUnavailable:
        return False
    finally:
        near_forget([key])
    return True


def ttl_of(key: CacheKey) -> int | None:
    """Seconds left for a key, None when absent or unknown."""
    try:
        with redis_call("ttl") as client:
            left = client.ttl(key)
    except CacheUnavailable:
        return None
    return left if left >= 0 else None


@dataclass(frozen=True)
class _Token:
    keys: list[str]
    values: list[str]
    held: bytes | None = None  # the key's stored state, when asked for (`Rebuild`)


# Tests switch the protection off to show that the hammer test can fail without it.
STALE_SET_PROTECTION = True


def _take_token(client, key: CacheKey, with_state: bool) -> _Token:
    """The key's generations (a value computed from here is stored only if they are unchanged),
    and in the same round trip its stored state when `with_state`."""
    generation_keys = [key_generation_key(key)]
    if key.org_id:
        generation_keys.append(org_generation_key(key.org_id))
    if not STALE_SET_PROTECTION:
        generation_keys = []
    asked = [*generation_keys, *([state_key(key)] if with_state else [])]
    read = client.mget(asked) if asked else []
    held = read.pop() if with_state else None
    return _Token(generation_keys, [(raw or b"0").decode() for raw in read], held)


# Values fetched ahead by `read_ahead`, consumed by `read_through` in the same request.
_read_ahead: ContextVar[dict[str, bytes | None] | None] = ContextVar("dashboard_cache_read_ahead", default=None)


@contextmanager
def read_ahead(keys: list[CacheKey]) -> Iterator[None]:
    """Fetch `keys` in one round trip (MGET) for the `read_through` calls inside the block.

    A request that checks the caller's principal and then reads an aggregate pays one Redis
    round trip instead of two; on a cached dashboard read, round trips are most of the cost.
    """
    fetched: dict[str, bytes | None] = {}
    if is_enabled() and keys:
        try:
            with redis_call("get") as client:
                fetched = dict(zip(keys, client.mget(keys), strict=True))
        except CacheUnavailable:
            fetched = {}
    token = _read_ahead.set(fetched)
    try:
        yield
    finally:
        _read_ahead.reset(token)


# What a computation returns: the value, or the value and the state a change updates it from.
Computed = bytes | tuple[bytes, bytes]
# The value and its state rebuilt from the state stored beside the expired value (passed in), or
# None when that state cannot be trusted to be current: then the value is computed.
Rebuild = Callable[[bytes], tuple[bytes, bytes] | None]


def read_through(key: CacheKey, compute: Callable[[], Computed], rebuild: Rebuild | None = None) -> bytes:
    """Cache-aside read: the cached bytes, or `compute()` stored for next time (or, with
    `rebuild`, the value rebuilt from the state kept beside it when that state is current).

    Errors never reach the caller: on any Redis failure the value is computed and returned.
    A computed value is stored only if no invalidation touched the key meanwhile.
    """
    query_type = key.query_type
    if not is_enabled():
        return _compute(query_type, compute)[0]
    ahead = _read_ahead.get()
    if ahead and key in ahead:
        cached = ahead.pop(key)
    else:
        try:
            with redis_call("get") as client:
                cached = client.get(key)
        except CacheUnavailable:
            CACHE_MISS.labels(query_type).inc()
            return _compute(query_type, compute)[0]
    if cached is not None:
        CACHE_HIT.labels(query_type).inc()
        return cached
    CACHE_MISS.labels(query_type).inc()
    return _fill(key, query_type, compute, rebuild)


def recompute(
    key: CacheKey, compute: Callable[[], Computed], rebuild: Rebuild | None = None, *, unless_locked: bool = False
) -> bytes | None:
    """Compute from the database and store the result, ignoring what is cached (`?refresh=1`, an
    event's refresh, a refresh ahead of expiry). The key's single-flight lock is held meanwhile
    when it is free: a reader that misses waits for this value, as for another reader's, instead
    of computing its own. (A lock some reader holds stays that reader's; its value, computed before
    the invalidation that preceded this call, is refused.) `unless_locked`: do nothing (None) when
    another process holds the lock, i.e. is computing it already."""
    query_type = key.query_type
    token: _Token | None = None
    lock_value = uuid.uuid4().hex
    locked = False
    if is_enabled():
        try:
            with redis_call("lock") as client:
                locked = bool(client.set(lock_key(key), lock_value, nx=True, px=LOCK_TTL_MS))
            if unless_locked and not locked:
                return None
            with redis_call("get") as client:
                token = _take_token(client, key, rebuild is not None)
        except CacheUnavailable:
            token = None
    try:
        value, state = _rebuild_or_compute(query_type, compute, rebuild, token)
        if token is not None:
            _store_if_current(key, query_type, value, state, token)
        return value
    finally:
        if locked:
            _release_lock(key, lock_value)


def _fill(key: CacheKey, query_type: str, compute: Callable[[], Computed], rebuild: Rebuild | None) -> bytes:
    lock_value = uuid.uuid4().hex
    try:
        with redis_call("lock") as client:
            locked = bool(client.set(lock_key(key), lock_value, nx=True, px=LOCK_TTL_MS))
            if not locked:
                waited, locked = _wait_for_value(client, key, lock_value)
                if waited is not None:
                    CACHE_SINGLEFLIGHT_WAIT.labels(query_type, "served").inc()
                    return waited
                CACHE_SINGLEFLIGHT_WAIT.labels(query_type, "took_over" if locked else "gave_up").inc()
            if locked:
                # The previous holder may have stored the value just before we got the lock.
                cached = client.get(key)
                if cached is not None:
                    scripts.run(client, scripts.RELEASE_LOCK, [lock_key(key)], [lock_value])
                    return cached
            token = _take_token(client, key, rebuild is not None)
    except CacheUnavailable:
        return _compute(query_type, compute)[0]
    try:
        value, state = _rebuild_or_compute(query_type, compute, rebuild, token)
        _store_if_current(key, query_type, value, state, token)
        return value
    finally:
        if locked:
            _release_lock(key, lock_value)


def _release_lock(key: CacheKey, lock_value: str) -> None:
    """Release the key's single-flight lock if it is still ours (it expires anyway)."""
    try:
        with redis_call("unlock") as client:
            scripts.run(client, scripts.RELEASE_LOCK, [lock_key(key)], [lock_value])
    except CacheUnavailable:
        pass


def _wait_for_value(client, key: str, lock_value: str) -> tuple[bytes | None, bool]:
    """Poll for the lock holder's value: (value, False), or (None, True) once we took the lock
    over from a holder that finished without storing, or (None, False) at the deadline."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(LOCK_POLL_SECONDS)
        cached = client.get(key)
        if cached is not None:
            return cached, False
        if client.set(lock_key(key), lock_value, nx=True, px=LOCK_TTL_MS):
            return None, True
    return None, False


def _rebuild_or_compute(
    query_type: str, compute: Callable[[], Computed], rebuild: Rebuild | None, token: _Token | None
) -> tuple[bytes, bytes]:
    """The value rebuilt from its held state when there is one and it is current, else computed.
    A state lives longer than its value (`scripts.STATE_MIN_SECONDS`) and every change since its
    computation is in it; a trend read after its TTL ran out costs one check query instead of
    aggregating 24 h of readings."""
    if rebuild is not None and token is not None and token.held:
        rebuilt = rebuild(token.held)
        if rebuilt is not None:
            CACHE_REBUILT.labels(query_type).inc()
            return rebuilt
    return _compute(query_type, compute)


def _compute(query_type: str, compute: Callable[[], Computed]) -> tuple[bytes, bytes]:
    """(value, state); the state is b"" for a value that no change updates in place."""
    CACHE_RECOMPUTE.labels(query_type).inc()
    started = time.perf_counter()
    computed = compute()
    ahead.observe_compute(query_type, time.perf_counter() - started)
    return computed if isinstance(computed, tuple) else (computed, b"")


def _store_if_current(key: CacheKey, query_type: str, value: bytes, state: bytes, token: _Token) -> None:
    org_id = key.org_id
    try:
        with redis_call("set") as client:
            stored = scripts.run(
                client,
                scripts.CAS_SET,
                [key, index_key(org_id) if org_id else "", state_key(key), key_generation_key(key), *token.keys],
                [value, key_ttl_ms(key), state, GENERATION_TTL_SECONDS, *token.values],
            )
    except CacheUnavailable:
        return
    finally:
        near_forget([key])
    if not stored:
        CACHE_STALE_SET_REFUSED.labels(query_type).inc()
        logger.info("[CacheService] Refused stale set: %s", key)
