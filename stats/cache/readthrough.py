"""Cache-aside reads: read-through with single flight and the stale-set guard, and recompute.

- Stale sets: before computing, a reader takes a token (the organization's generation and the
  key's generation). Every invalidation bumps the generation of what it deletes; the write is a
  compare-and-set in Lua that stores nothing if a generation moved meanwhile (memcache leases).
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
from .boundary import CacheUnavailable, is_enabled, redis_call, ttl_seconds
from .keys import CacheKey, index_key, key_generation_key, lock_key, org_generation_key, state_key
from .lane import near_forget
from .metrics import CACHE_HIT, CACHE_MISS, CACHE_RECOMPUTE, CACHE_SINGLEFLIGHT_WAIT, CACHE_STALE_SET_REFUSED

logger = logging.getLogger("stats.cache")

# Single flight: the lock outlives a slow aggregate; waiters give up well before a user would.
LOCK_TTL_MS = 10_000
LOCK_WAIT_SECONDS = 2.0
LOCK_POLL_SECONDS = 0.005


def key_ttl(key: CacheKey) -> int:
    """The key's TTL: its query's, from the catalogue (a principal's: the default)."""
    from .. import queries  # the catalogue reads the models: loaded once the app registry is ready

    query = queries.by_name(key.query_type)
    return query.ttl_seconds() if query is not None else ttl_seconds()


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
    """Store unconditionally with a fresh TTL (every set resets the TTL)."""
    if not is_enabled():
        return False
    org_id = key.org_id
    try:
        with redis_call("set") as client:
            scripts.run(
                client,
                scripts.CAS_SET,
                [key, index_key(org_id) if org_id else "", state_key(key)],
                [value, ttl or key_ttl(key), ""],
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


# Tests switch the protection off to show that the hammer test can fail without it.
STALE_SET_PROTECTION = True


def _take_token(client, key: str) -> _Token:
    if not STALE_SET_PROTECTION:
        return _Token([], [])
    generation_keys = [key_generation_key(key)]
    org_id = key.org_id
    if org_id:
        generation_keys.append(org_generation_key(org_id))
    values = [(raw or b"0").decode() for raw in client.mget(generation_keys)]
    return _Token(generation_keys, values)


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


def read_through(key: CacheKey, compute: Callable[[], Computed]) -> bytes:
    """Cache-aside read: the cached bytes, or `compute()` stored for next time.

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
    return _fill(key, query_type, compute)


def recompute(key: CacheKey, compute: Callable[[], Computed], *, unless_locked: bool = False) -> bytes | None:
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
                token = _take_token(client, key)
        except CacheUnavailable:
            token = None
    try:
        value, state = _compute(query_type, compute)
        if token is not None:
            _store_if_current(key, query_type, value, state, token)
        return value
    finally:
        if locked:
            _release_lock(key, lock_value)


def _fill(key: CacheKey, query_type: str, compute: Callable[[], Computed]) -> bytes:
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
            token = _take_token(client, key)
    except CacheUnavailable:
        return _compute(query_type, compute)[0]
    try:
        value, state = _compute(query_type, compute)
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
                [key, index_key(org_id) if org_id else "", state_key(key), *token.keys],
                [value, key_ttl(key), state, *token.values],
            )
    except CacheUnavailable:
        return
    finally:
        near_forget([key])
    if not stored:
        CACHE_STALE_SET_REFUSED.labels(query_type).inc()
        logger.info("[CacheService] Refused stale set: %s", key)
