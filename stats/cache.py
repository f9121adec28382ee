"""The one Redis boundary of the dashboard cache.

Everything that talks to the dashboard cache's Redis goes through here: key building, read-through
with stale-set protection and single flight, invalidation, health, metrics and degradation.
Every Redis error is caught here, counted in `dashboard_cache_error_total{operation}`, logged, and
turned into "no cache": the caller then reads the database. Nothing else catches Redis errors.

Values are response-ready JSON bytes, so a hit and a miss return byte-identical bodies.

Correctness under concurrency (DESIGN section 5, traps 3-5):
- Stale sets: before computing, a reader takes a token (the organization's generation and the
  key's generation). Every invalidation bumps the generation of what it deletes; the write is a
  compare-and-set in Lua that stores nothing if a generation moved meanwhile (memcache leases).
- Single flight: on a miss one reader takes a short lock and computes; the others poll for its
  value for a bounded time, then compute themselves rather than hang.
- Invalidation never SCANs on the hot path: events delete the keys they name, and an
  organization-wide invalidation deletes the members of a per-org index of cached keys. Only the
  explicit sweep (admin, recovery) uses `delete_pattern`.
- A circuit breaker skips Redis for a short interval after consecutive failures, so a dead Redis
  costs requests nothing instead of a timeout each.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from weakref import WeakKeyDictionary

from django.conf import settings
from django.core.cache import caches
from django_redis.exceptions import ConnectionInterrupted
from prometheus_client import Counter, Gauge, Histogram
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.sentinel import SentinelConnectionPool

from .near import NearCache

logger = logging.getLogger("stats.cache")

KEY_NAMESPACE = "dashboard"
# Bookkeeping lives outside `dashboard:*` so sweeps and the admin inspector only see values.
META_NAMESPACE = "dashmeta"
# A generation must outlive any computation that read it; a day is far beyond that.
GENERATION_TTL_SECONDS = 86_400
# Single flight: the lock outlives a slow aggregate; waiters give up well before a user would.
LOCK_TTL_MS = 10_000
LOCK_WAIT_SECONDS = 2.0
LOCK_POLL_SECONDS = 0.005
BREAKER_FAILURE_THRESHOLD = 5


class QueryType(StrEnum):
    UNITS_STATUS = "units:status"
    ALERTS_COUNT = "alerts:count"
    TEMPERATURE_TRENDS = "temperature:trends"
    DEVICES_ONLINE = "devices:online"
    STATS = "stats"


# --- metrics ---------------------------------------------------------------------------------
CACHE_HIT = Counter("dashboard_cache_hit_total", "Dashboard cache hits", ["query_type"])
CACHE_MISS = Counter("dashboard_cache_miss_total", "Dashboard cache misses", ["query_type"])
CACHE_ERROR = Counter("dashboard_cache_error_total", "Dashboard cache errors (Redis failures)", ["operation"])
CACHE_LATENCY = Histogram(
    "dashboard_cache_latency_seconds",
    "Dashboard cache operation latency",
    ["operation"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5),
)
CACHE_RECOMPUTE = Counter(
    "dashboard_cache_recompute_total", "Aggregations computed from the database on a miss", ["query_type"]
)
CACHE_STALE_SET_REFUSED = Counter(
    "dashboard_cache_stale_set_refused_total",
    "Computed values not stored because an invalidation happened while they were computed",
    ["query_type"],
)
CACHE_SINGLEFLIGHT_WAIT = Counter(
    "dashboard_cache_singleflight_wait_total",
    "Misses that waited for another request's computation",
    ["query_type", "outcome"],
)
CACHE_INVALIDATIONS = Counter("dashboard_cache_invalidations_total", "Invalidations performed", ["scope"])
CACHE_KEYS_DELETED = Counter("dashboard_cache_keys_deleted_total", "Cache keys deleted by invalidations")
CACHE_INVALIDATION_SECONDS = Histogram(
    "dashboard_cache_invalidation_duration_seconds",
    "Duration of one invalidation",
    ["scope"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0),
)
CACHE_BREAKER_OPEN = Gauge("dashboard_cache_breaker_open", "1 while the Redis circuit breaker is open")
CACHE_BREAKER_SKIPPED = Counter(
    "dashboard_cache_breaker_skipped_total", "Cache operations skipped because the breaker was open", ["operation"]
)


# --- keys ------------------------------------------------------------------------------------
class InvalidKeyPart(ValueError):
    pass


def _uuid(value: uuid.UUID | str) -> str:
    """The canonical form of a UUID; anything else is refused before it can reach a key."""
    if isinstance(value, uuid.UUID):
        return str(value)
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        raise InvalidKeyPart(f"not a UUID: {value!r}") from None


def cache_key(query_type: QueryType, org_id: uuid.UUID | str, unit_id: uuid.UUID | str | None = None) -> str:
    """`dashboard:{queryType}:org:{orgId}[:unit:{unitId}]` (REQ-CACHE-002)."""
    key = f"{KEY_NAMESPACE}:{QueryType(query_type)}:org:{_uuid(org_id)}"
    if unit_id is not None:
        key += f":unit:{_uuid(unit_id)}"
    return key


def org_pattern(org_id: uuid.UUID | str) -> str:
    # The trailing `*` is what covers `...:org:{id}:unit:{u}` (trap 1 of DESIGN section 5).
    return f"{KEY_NAMESPACE}:*:org:{_uuid(org_id)}*"


PRINCIPAL_PREFIX = "authz:user:"


def principal_key(user_id: int) -> str:
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id < 0:
        raise InvalidKeyPart(f"not a user id: {user_id!r}")
    return f"{PRINCIPAL_PREFIX}{user_id}"


def query_type_of(key: str) -> str:
    if key.startswith(f"{KEY_NAMESPACE}:") and ":org:" in key:
        return key[len(KEY_NAMESPACE) + 1 : key.index(":org:")]
    return key.split(":", 1)[0]


def org_of(key: str) -> str | None:
    marker = key.find(":org:")
    return key[marker + 5 : marker + 41] if marker >= 0 else None


def _org_generation_key(org_id: str) -> str:
    return f"{META_NAMESPACE}:gen:org:{org_id}"


def _key_generation_key(key: str) -> str:
    return f"{META_NAMESPACE}:gen:{key}"


def _index_key(org_id: str) -> str:
    return f"{META_NAMESPACE}:idx:org:{org_id}"


def _lock_key(key: str) -> str:
    return f"{META_NAMESPACE}:lock:{key}"


def make_key(key: str, key_prefix: str, version: int) -> str:
    """django-redis KEY_FUNCTION: keys are stored exactly as built above, no prefix or version."""
    return key


# --- Lua -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Lua:
    source: str
    sha: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


# KEYS: value key, index key, generation keys...; ARGV: value, ttl, expected generations...
_CAS_SET = _Lua(
    """
for i = 3, #KEYS do
  if (redis.call('GET', KEYS[i]) or '0') ~= ARGV[i] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if KEYS[2] ~= '' then
  redis.call('SADD', KEYS[2], KEYS[1])
  if redis.call('TTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
end
return 1
"""
)

# KEYS: pairs of (value key, its generation key); ARGV: generation ttl. Returns, per value key,
# 1 if it was deleted (it existed), else 0.
_DELETE_AND_BUMP = _Lua(
    """
local deleted = {}
for i = 1, #KEYS, 2 do
  deleted[#deleted + 1] = redis.call('DEL', KEYS[i])
  redis.call('INCR', KEYS[i + 1])
  redis.call('EXPIRE', KEYS[i + 1], ARGV[1])
end
return deleted
"""
)

# KEYS: index key, org generation key; ARGV: generation ttl. Returns keys deleted.
_INVALIDATE_INDEXED = _Lua(
    """
local deleted = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  deleted = deleted + redis.call('DEL', key)
end
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return deleted
"""
)

# KEYS: session key, value key; ARGV: principal key prefix. The principal's key is read from the
# session (JSON-serialized by the sessions cache), so a signed-in cached read is one round trip.
# Returns {session, user id, principal, value}, each false (nil) when absent: the caller checks
# that the user id is the one it reads from the session itself before trusting the principal.
_SESSION_READ = _Lua(
    """
local session = redis.call('GET', KEYS[1])
if not session then return {false, false, false, false} end
local ok, data = pcall(cjson.decode, session)
local user_id = ok and type(data) == 'table' and data['_auth_user_id']
if type(user_id) ~= 'string' or #user_id > 18 or not string.match(user_id, '^[0-9]+$') then
  return {session, false, false, false}
end
return {session, user_id, redis.call('GET', ARGV[1] .. user_id), redis.call('GET', KEYS[2])}
"""
)

_RELEASE_LOCK = _Lua(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
)


# --- the boundary ----------------------------------------------------------------------------
class CacheUnavailable(Exception):
    """Raised inside this module only; never escapes it."""


class _Breaker:
    """Open after consecutive failures; after `open_seconds` let calls probe again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until = 0.0

    def allow(self) -> bool:
        return time.monotonic() >= self._open_until

    def success(self) -> None:
        if self._failures:
            self.reset()

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= BREAKER_FAILURE_THRESHOLD:
                self._open_until = time.monotonic() + settings.CACHE_BREAKER_OPEN_SECONDS
                opened = True
            else:
                opened = False
        if opened:
            CACHE_BREAKER_OPEN.set(1)

    def reset(self) -> None:
        with self._lock:
            self._failures = 0
            self._open_until = 0.0
        CACHE_BREAKER_OPEN.set(0)


_breaker = _Breaker()


def reset_breaker() -> None:
    """Forget past failures (tests that point the cache somewhere else start clean)."""
    _breaker.reset()


def redis_usable() -> bool:
    """False while the breaker is open: other Redis users (sessions) skip Redis too."""
    return _breaker.allow()


def is_enabled() -> bool:
    return bool(settings.CACHE_ENABLED)


def ttl_seconds() -> int:
    return int(settings.CACHE_TTL_SECONDS)


def _client():  # -> redis.Redis
    return caches["default"].client.get_client(write=True)


_latency_children: dict[str, object] = {}


def _latency(operation: str):
    """The latency histogram's child for `operation`, looked up once."""
    latency = _latency_children.get(operation)
    if latency is None:
        latency = _latency_children[operation] = CACHE_LATENCY.labels(operation)
    return latency


@contextmanager
def _redis(operation: str, *, timed: bool = True) -> Iterator[object]:
    """Run one Redis operation: timed, breaker-guarded, errors counted, logged and converted.
    `timed=False`: the operation times its own round trips (the tracked copies, whose hits make
    none and must not dilute the latency the alerts watch)."""
    if not _breaker.allow():
        CACHE_BREAKER_SKIPPED.labels(operation).inc()
        raise CacheUnavailable(operation)
    latency = _latency(operation)
    started = time.perf_counter()
    try:
        yield _client()
    except (RedisError, ConnectionInterrupted, OSError) as exc:
        CACHE_ERROR.labels(operation).inc()
        _breaker.failure()
        logger.error("[CacheService] %s error: %s", operation.capitalize(), exc)
        raise CacheUnavailable(operation) from exc
    else:
        _breaker.success()
    finally:
        if timed:
            latency.observe(time.perf_counter() - started)


def _run_script(client, script: _Lua, keys: list[str], args: list[object]):
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return client.eval(script.source, len(keys), *keys, *args)


def _call_direct(client, *args: object):
    """One command on one of the client's pooled connections, without redis-py's per-command
    machinery (retry wrapper, observability hooks, response callbacks): for the fast path's one
    call, where that machinery cost as much as the socket calls (bench/RESULTS.md). Errors are
    redis-py's own exceptions. A pooled connection the server closed is reconnected by the pool
    itself when handed out; a failure after that is the caller's to handle (the lane passes)."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command(connection.pack_command(*args))
        return connection.read_response()
    except ResponseError:  # an error reply, read whole: the connection is fine
        raise
    except BaseException:
        connection.disconnect()  # nothing half-read stays in the pool
        raise
    finally:
        pool.release(connection)


def _run_script_direct(client, script: _Lua, keys: list[str], args: list[object]):
    try:
        return _call_direct(client, "EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return _call_direct(client, "EVAL", script.source, len(keys), *keys, *args)


def get(key: str) -> bytes | None:
    """The cached bytes, or None on a miss, when disabled, or when Redis fails."""
    if not is_enabled():
        return None
    try:
        with _redis("get") as client:
            value = client.get(key)
    except CacheUnavailable:
        return None
    return value


def set(key: str, value: bytes, ttl: int | None = None) -> bool:  # noqa: A001 - the card's API name
    """Store unconditionally with a fresh TTL (REQ-CACHE: TTL reset on every set)."""
    if not is_enabled():
        return False
    org_id = org_of(key)
    try:
        with _redis("set") as client:
            _run_script(
                client,
                _CAS_SET,
                [key, _index_key(org_id) if org_id else ""],
                [value, ttl or ttl_seconds()],
            )
    except CacheUnavailable:
        return False
    finally:
        near_forget([key])
    return True


def delete(key: str) -> bool:
    """Delete one key (and bump its generation so an in-flight computation cannot restore it)."""
    return invalidate_keys([key]) is not None


def ttl_of(key: str) -> int | None:
    """Seconds left for a key, None when absent or unknown."""
    try:
        with _redis("ttl") as client:
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
    generation_keys = [_key_generation_key(key)]
    org_id = org_of(key)
    if org_id:
        generation_keys.append(_org_generation_key(org_id))
    values = [(raw or b"0").decode() for raw in client.mget(generation_keys)]
    return _Token(generation_keys, values)


# Values fetched ahead by `read_ahead`, consumed by `read_through` in the same request.
_read_ahead: ContextVar[dict[str, bytes | None] | None] = ContextVar("dashboard_cache_read_ahead", default=None)


@contextmanager
def read_ahead(keys: list[str]) -> Iterator[None]:
    """Fetch `keys` in one round trip (MGET) for the `read_through` calls inside the block.

    A request that checks the caller's principal and then reads an aggregate pays one Redis
    round trip instead of two; on a cached dashboard read, round trips are most of the cost.
    """
    fetched: dict[str, bytes | None] = {}
    if is_enabled() and keys:
        try:
            with _redis("get") as client:
                fetched = dict(zip(keys, client.mget(keys), strict=True))
        except CacheUnavailable:
            fetched = {}
    token = _read_ahead.set(fetched)
    try:
        yield
    finally:
        _read_ahead.reset(token)


@dataclass(frozen=True)
class SessionRead:
    session: bytes | None
    principal_user_id: int | None  # whose principal `principal` is
    principal: bytes | None
    value: bytes | None


def read_for_session(session_key: str, key: str) -> SessionRead | None:
    """The session, the principal the session names and the value of `key` (raw bytes, None where
    absent); None when disabled or when Redis failed. From this process's tracked copies where
    they are valid (`stats.near`), else in one round trip.

    `session_key` is the sessions cache's Redis key. Hits are counted by the caller, which alone
    knows whether the value may be served (`count_hits`).
    """
    if not is_enabled():
        return None
    try:
        with _redis("get", timed=False) as client:
            near = _near_cache(client)
            if near is None:
                started = time.perf_counter()
                session, user_id, principal, value = _run_script_direct(
                    client, _SESSION_READ, [session_key, key], [PRINCIPAL_PREFIX]
                )
                _latency("get").observe(time.perf_counter() - started)
            else:
                session, value = near.get_many([session_key, key])
                user_id = _session_user_id(session)
                principal = near.get_many([PRINCIPAL_PREFIX + user_id], sync=False)[0] if user_id else None
    except CacheUnavailable:
        return None
    return SessionRead(session, int(user_id) if user_id is not None else None, principal, value)


_USER_ID = re.compile(r"[0-9]{1,18}")


def _session_user_id(session: bytes | None) -> str | None:
    """The `_auth_user_id` a stored session names, by the rule `_SESSION_READ` applies in Lua."""
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


def _near_cache(client) -> NearCache | None:
    """This process's tracked copies for `client`'s Redis; None when switched off
    (CACHE_NEAR_MAX_MB=0) or behind Sentinel (the copies would not follow a failover)."""
    max_mb = settings.CACHE_NEAR_MAX_MB
    pool = client.connection_pool
    if not max_mb or isinstance(pool, SentinelConnectionPool):
        return None
    near = _near_caches.get(pool)
    if near is None:
        connection_class, kwargs = pool.connection_class, {**pool.connection_kwargs, "protocol": 3}
        with _near_lock:
            near = _near_caches.get(pool)
            if near is None:
                near = _near_caches[pool] = NearCache(
                    lambda: connection_class(**kwargs), max_mb * 2**20, round_trip=_latency("get").observe
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


def count_hits(*keys: str) -> None:
    """Count hits the caller served from `read_for_session` (children looked up once)."""
    for key in keys:
        query_type = query_type_of(key)
        counter = _hit_counters.get(query_type)
        if counter is None:
            counter = _hit_counters[query_type] = CACHE_HIT.labels(query_type)
        counter.inc()


def read_through(key: str, compute: Callable[[], bytes]) -> bytes:
    """Cache-aside read (REQ-CACHE-001): the cached bytes, or `compute()` stored for next time.

    Errors never reach the caller: on any Redis failure the value is computed and returned.
    A computed value is stored only if no invalidation touched the key meanwhile.
    """
    query_type = query_type_of(key)
    if not is_enabled():
        return _compute(query_type, compute)
    ahead = _read_ahead.get()
    if ahead and key in ahead:
        cached = ahead.pop(key)
    else:
        try:
            with _redis("get") as client:
                cached = client.get(key)
        except CacheUnavailable:
            CACHE_MISS.labels(query_type).inc()
            return _compute(query_type, compute)
    if cached is not None:
        CACHE_HIT.labels(query_type).inc()
        return cached
    CACHE_MISS.labels(query_type).inc()
    return _fill(key, query_type, compute)


def recompute(key: str, compute: Callable[[], bytes]) -> bytes:
    """Compute from the database and store the result, ignoring what is cached (`?refresh=1`, an
    event's refresh). The key's single-flight lock is held meanwhile when it is free: a reader
    that misses waits for this value, as for another reader's, instead of computing its own.
    (A lock some reader holds stays that reader's; its value, computed before the invalidation
    that preceded this call, is refused.)"""
    query_type = query_type_of(key)
    token: _Token | None = None
    lock_value = uuid.uuid4().hex
    locked = False
    if is_enabled():
        try:
            with _redis("lock") as client:
                locked = bool(client.set(_lock_key(key), lock_value, nx=True, px=LOCK_TTL_MS))
            with _redis("get") as client:
                token = _take_token(client, key)
        except CacheUnavailable:
            token = None
    try:
        value = _compute(query_type, compute)
        if token is not None:
            _store_if_current(key, query_type, value, token)
        return value
    finally:
        if locked:
            _release_lock(key, lock_value)


def _fill(key: str, query_type: str, compute: Callable[[], bytes]) -> bytes:
    lock_value = uuid.uuid4().hex
    try:
        with _redis("lock") as client:
            locked = bool(client.set(_lock_key(key), lock_value, nx=True, px=LOCK_TTL_MS))
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
                    _run_script(client, _RELEASE_LOCK, [_lock_key(key)], [lock_value])
                    return cached
            token = _take_token(client, key)
    except CacheUnavailable:
        return _compute(query_type, compute)
    try:
        value = _compute(query_type, compute)
        _store_if_current(key, query_type, value, token)
        return value
    finally:
        if locked:
            _release_lock(key, lock_value)


def _release_lock(key: str, lock_value: str) -> None:
    """Release the key's single-flight lock if it is still ours (it expires anyway)."""
    try:
        with _redis("unlock") as client:
            _run_script(client, _RELEASE_LOCK, [_lock_key(key)], [lock_value])
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
        if client.set(_lock_key(key), lock_value, nx=True, px=LOCK_TTL_MS):
            return None, True
    return None, False


def _compute(query_type: str, compute: Callable[[], bytes]) -> bytes:
    CACHE_RECOMPUTE.labels(query_type).inc()
    return compute()


def _store_if_current(key: str, query_type: str, value: bytes, token: _Token) -> None:
    org_id = org_of(key)
    try:
        with _redis("set") as client:
            stored = _run_script(
                client,
                _CAS_SET,
                [key, _index_key(org_id) if org_id else "", *token.keys],
                [value, ttl_seconds(), *token.values],
            )
    except CacheUnavailable:
        return
    finally:
        near_forget([key])
    if not stored:
        CACHE_STALE_SET_REFUSED.labels(query_type).inc()
        logger.info("[CacheService] Refused stale set: %s", key)


def invalidate_keys(keys: Iterable[str]) -> int | None:
    """Delete the named keys and bump their generations; the number deleted, None on failure."""
    deleted = invalidate_keys_present(keys)
    return None if deleted is None else len(deleted)


def invalidate_keys_present(keys: Iterable[str]) -> list[str] | None:
    """Delete the named keys and bump their generations; the keys that were cached (and are now
    deleted), None on failure."""
    keys = list(dict.fromkeys(keys))
    if not keys or not is_enabled():
        return []
    pairs: list[str] = []
    for key in keys:
        pairs += [key, _key_generation_key(key)]
    started = time.perf_counter()
    try:
        with _redis("invalidate") as client:
            flags = _run_script(client, _DELETE_AND_BUMP, pairs, [GENERATION_TTL_SECONDS])
    except CacheUnavailable:
        return None
    finally:
        near_forget(keys)
    deleted = [key for key, flag in zip(keys, flags, strict=True) if int(flag)]
    CACHE_INVALIDATION_SECONDS.labels("keys").observe(time.perf_counter() - started)
    CACHE_INVALIDATIONS.labels("keys").inc()
    CACHE_KEYS_DELETED.inc(len(deleted))
    logger.debug("[CacheService] Invalidated keys: %s (%d deleted)", ", ".join(keys), len(deleted))
    return deleted


def invalidate_org(org_id: uuid.UUID | str, *, sweep: bool = False) -> int | None:
    """Delete every cached key of an organization, per-unit sub-keys included.

    Uses the per-org index (cost independent of other keys in Redis). `sweep=True` also runs
    `delete_pattern` over the keyspace, for keys the index may not know (admin, recovery).
    Returns the number of keys deleted, None when Redis failed.
    """
    org = _uuid(org_id)
    if not is_enabled():
        return 0
    scope = "org_sweep" if sweep else "org"
    started = time.perf_counter()
    try:
        with _redis("invalidate") as client:
            deleted = int(
                _run_script(
                    client,
                    _INVALIDATE_INDEXED,
                    [_index_key(org), _org_generation_key(org)],
                    [GENERATION_TTL_SECONDS],
                )
            )
        if sweep:
            pattern = org_pattern(org)
            with _redis("invalidate"):
                deleted += int(caches["default"].delete_pattern(pattern, itersize=settings.DJANGO_REDIS_SCAN_ITERSIZE))
            logger.info("[CacheService] Invalidated pattern: %s", pattern)
    except CacheUnavailable:
        return None
    finally:
        near_forget(org_id=org)
    CACHE_INVALIDATION_SECONDS.labels(scope).observe(time.perf_counter() - started)
    CACHE_INVALIDATIONS.labels(scope).inc()
    CACHE_KEYS_DELETED.inc(deleted)
    logger.info("[CacheService] Invalidated org %s (%d keys)", org, deleted)
    return deleted


def health_check() -> dict[str, object]:
    """`{ok, latencyMs}` from a PING; never raises. Bypasses the breaker so it sees recovery."""
    started = time.perf_counter()
    try:
        _client().ping()
        ok = True
        _breaker.success()
    except (RedisError, ConnectionInterrupted, OSError) as exc:
        CACHE_ERROR.labels("health").inc()
        logger.error("[CacheService] Health error: %s", exc)
        ok = False
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    CACHE_LATENCY.labels("health").observe(latency_ms / 1000)
    return {"ok": ok, "latencyMs": latency_ms}


def scan_keys(match: str = f"{KEY_NAMESPACE}:*", limit: int = 5000) -> list[str] | None:
    """Up to `limit` cached keys matching `match` (admin inspector); None when Redis fails."""
    try:
        with _redis("scan") as client:
            found: list[str] = []
            for raw in client.scan_iter(match=match, count=settings.DJANGO_REDIS_SCAN_ITERSIZE):
                found.append(raw.decode())
                if len(found) >= limit:
                    break
    except CacheUnavailable:
        return None
    return sorted(found)


def log_startup() -> None:
    if is_enabled():
        logger.info("[CacheService] Initialized with TTL: %ss", ttl_seconds())
    else:
        logger.warning("[CacheService] Redis not configured - caching disabled")
