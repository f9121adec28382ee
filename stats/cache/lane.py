"""The fast path's reads: the session, the principal it names and the value, from this process's
tracked copies (`stats.near`) where they are valid, else in one round trip."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from django.conf import settings

from ..near import NearCache
from . import scripts
from .boundary import CacheUnavailable, is_enabled, latency, redis_call
from .keys import PRINCIPAL_PREFIX, CacheKey
from .metrics import CACHE_HIT


@dataclass(frozen=True)
class SessionRead:
    session: bytes | None
    principal_user_id: int | None  # whose principal `principal` is
    principal: bytes | None
    value: bytes | None
    seconds_left: float | None = None  # the value's TTL left (None: unknown or no expiry)


def read_for_session(session_key: str, key: CacheKey) -> SessionRead | None:
    """The session, the principal the session names and the value of `key` (raw bytes, None where
    absent); None when disabled or when Redis failed.

    `session_key` is the sessions cache's Redis key. Hits are counted by the caller, which alone
    knows whether the value may be served (`count_hits`).
    """
    if not is_enabled():
        return None
    try:
        with redis_call("get", timed=False) as client:
            near = near_cache(client)
            if near is None:
                started = time.perf_counter()
                session, user_id, principal, value, pttl = scripts.run_direct(
                    client, scripts.SESSION_READ, [session_key, key], [PRINCIPAL_PREFIX]
                )
                latency("get").observe(time.perf_counter() - started)
                left = pttl / 1000 if isinstance(pttl, int) and pttl >= 0 else None
            else:
                session, value = near.get_many([session_key, key])
                user_id = _session_user_id(session)
                principal = near.get_many([PRINCIPAL_PREFIX + user_id], sync=False)[0] if user_id else None
                left = near.seconds_left(key)
    except CacheUnavailable:
        return None
    return SessionRead(session, int(user_id) if user_id is not None else None, principal, value, left)


def read_tracked(key: str) -> bytes | None:
    """One key, from this process's tracked copy when it holds one; else read from Redis, and
    a copy kept (and tracked) from now on if the key exists. None when absent, disabled or when
    Redis failed. For keys every request asks for that change rarely, such as the organization of
    a webhook secret's digest: a deletion reaches the copies by Redis's push, which Redis writes
    before it executes any later command. An absent key is not kept: a stream of wrong secrets
    fills neither this process's copies nor Redis's table of tracked keys."""
    if not is_enabled():
        return None
    try:
        with redis_call("get", timed=False) as client:
            near = near_cache(client)
            held = near.get_held(key) if near is not None else None
            if held is not None:
                return held
            started = time.perf_counter()
            value = scripts.call_direct(client, "GET", key)
            latency("get").observe(time.perf_counter() - started)
            if value is not None and near is not None:
                near.get_many([key], sync=False)  # one round trip more, once per key and process
            return value
    except CacheUnavailable:
        return None


_USER_ID = re.compile(r"[0-9]{1,18}")


def _session_user_id(session: bytes | None) -> str | None:
    """The `_auth_user_id` a stored session names, by the rule `SESSION_READ` applies in Lua."""
    if session is None:
        return None
    try:
        data = json.loads(session)
    except ValueError:
        return None
    user_id = data.get("_auth_user_id") if isinstance(data, dict) else None
    return user_id if isinstance(user_id, str) and _USER_ID.fullmatch(user_id) else None


# One tracked copy per connection pool (the settings' Redis), per process (`NearCache` notices a
# fork). Weak keys: a pool that tests replace goes away with its copies.
_near_caches: WeakKeyDictionary = WeakKeyDictionary()
_near_lock = threading.Lock()


def near_cache(client) -> NearCache | None:
    """This process's tracked copies for `client`'s Redis; None when switched off
    (CACHE_NEAR_MAX_MB=0). The tracked connection is of the pool's own class: behind Sentinel, a
    Sentinel-managed connection that (re)connects to the master the sentinels name."""
    max_mb = settings.CACHE_NEAR_MAX_MB
    pool = client.connection_pool
    if not max_mb:
        return None
    near = _near_caches.get(pool)
    if near is None:
        connection_class, kwargs = pool.connection_class, {**pool.connection_kwargs, "protocol": 3}
        with _near_lock:
            near = _near_caches.get(pool)
            if near is None:
                near = _near_caches[pool] = NearCache(
                    lambda: connection_class(**kwargs), max_mb * 2**20, round_trip=latency("get").observe
                )
    return near


def near_close() -> None:
    """Close this process's tracked connections (it is stopping)."""
    for near in list(_near_caches.values()):
        near.close()


def near_forget(keys: Iterable[str] = (), *, org_id: str | None = None) -> None:
    """Drop this process's copies of keys it has just written or deleted (and, with `org_id`,
    of every key of that organization): their invalidation push is on its way, this makes the
    change visible here without waiting for it."""
    keys = list(keys)
    for near in list(_near_caches.values()):
        near.forget(keys)
        if org_id is not None:
            near.forget_matching(f":org:{org_id}")


_hit_counters: dict[str, object] = {}


def count_hits(*keys: CacheKey) -> None:
    """Count hits the caller served from `read_for_session` (children looked up once)."""
    for key in keys:
        counter = _hit_counters.get(key.query_type)
        if counter is None:
            counter = _hit_counters[key.query_type] = CACHE_HIT.labels(key.query_type)
        counter.inc()
