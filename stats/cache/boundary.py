"""The one place that talks to the cache's Redis: every call goes through `redis_call`, which
times it, skips it while the circuit breaker is open, and turns any Redis error into
`CacheUnavailable` after counting it (`dashboard_cache_error_total{operation}`) and logging the
outage once (`dashboard_project.outage`). Callers catch `CacheUnavailable` and fall back to the
database; nothing outside this package catches Redis errors."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.conf import settings
from django.core.cache import caches
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from dashboard_project.outage import OutageLog

from .metrics import CACHE_BREAKER_OPEN, CACHE_BREAKER_SKIPPED, CACHE_ERROR, CACHE_LATENCY

logger = logging.getLogger("stats.cache")

BREAKER_FAILURE_THRESHOLD = 5


class CacheUnavailable(Exception):
    """Raised inside this package only; never escapes it."""


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


breaker = _Breaker()
_outage = OutageLog(logger, "Redis", prefix="[CacheService] ", counted_in="dashboard_cache_error_total{operation}")


def reset_breaker() -> None:
    """Forget past failures (tests that point the cache somewhere else start clean)."""
    breaker.reset()
    _outage.forget()


def is_enabled() -> bool:
    return bool(settings.CACHE_ENABLED)


def ttl_seconds() -> int:
    return int(settings.CACHE_TTL_SECONDS)


def client():  # -> redis.Redis
    return caches["default"].client.get_client(write=True)


_latency_children: dict[str, object] = {}


def latency(operation: str):
    """The latency histogram's child for `operation`, looked up once."""
    child = _latency_children.get(operation)
    if child is None:
        child = _latency_children[operation] = CACHE_LATENCY.labels(operation)
    return child


@contextmanager
def redis_call(operation: str, *, timed: bool = True, guard: bool = True) -> Iterator[object]:
    """Run one Redis operation: timed, breaker-guarded, errors counted, logged and converted.
    `timed=False`: the operation times its own round trips (the tracked copies, whose hits make
    none and must not dilute the latency the alerts watch). `guard=False`: tried even while
    the breaker is open."""
    if guard and not breaker.allow():
        CACHE_BREAKER_SKIPPED.labels(operation).inc()
        _outage.skipped()
        raise CacheUnavailable(operation)
    child = latency(operation)
    started = time.perf_counter()
    try:
        yield client()
    except (RedisError, ConnectionInterrupted, OSError) as exc:
        CACHE_ERROR.labels(operation).inc()
        breaker.failure()
        _outage.failed(operation, exc)
        raise CacheUnavailable(operation) from exc
    else:
        breaker.success()
        _outage.answered()
    finally:
        if timed:
            child.observe(time.perf_counter() - started)


_T = TypeVar("_T")


def guarded(operation: str, call: Callable[[], _T], default: _T, *, breaker: bool = True) -> _T:
    """`call()`, made by another client of this Redis (the sessions cache), through this boundary:
    skipped while the breaker is open (unless `breaker=False`), a failure counted, logged once per
    outage and answered with `default`."""
    try:
        with redis_call(operation, timed=False, guard=breaker):
            return call()
    except CacheUnavailable:
        return default


def health_check() -> dict[str, object]:
    """`{ok, latencyMs}` from a PING; never raises. Bypasses the breaker so it sees recovery."""
    started = time.perf_counter()
    try:
        client().ping()
        ok = True
        breaker.success()
        _outage.answered()
    except (RedisError, ConnectionInterrupted, OSError) as exc:
        CACHE_ERROR.labels("health").inc()
        _outage.failed("health", exc)
        ok = False
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    CACHE_LATENCY.labels("health").observe(latency_ms / 1000)
    return {"ok": ok, "latencyMs": latency_ms}


def log_startup() -> None:
    if is_enabled():
        logger.info("[CacheService] Initialized with TTL: %ss", ttl_seconds())
    else:
        logger.warning("[CacheService] Redis not configured - caching disabled")
