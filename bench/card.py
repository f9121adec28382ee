"""The cache as first specified, before this project's own design: BENCH_VARIANT=card
(bench/variant_settings.py), one contender of the peers scenario (bench/peers.py).

Cache-aside with the TTL and nothing else: a miss computes and stores (SET with EX), with no
stale-set guard and no single flight; every event, whatever it changes, deletes its
organization's keys with django-redis `delete_pattern("dashboard:*:org:<id>*")` (a SCAN of the
keyspace, at django-redis's default batch of 10) and then is sent; no key is recomputed by the
emitter. The settings module turns off the fast path and the tracked copies. Installed as an
app so that the project's functions are replaced once, in every server process, before any
request; never used outside the bench.
"""

from __future__ import annotations

import inspect
import time
import types
import uuid
from collections.abc import Callable, Sequence

from django.apps import AppConfig
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured


def _fill(key, query_type: str, compute: Callable[[], object], rebuild: object = None) -> bytes:
    """A miss: compute, store for the TTL, whatever happened meanwhile (never from a kept state)."""
    from stats.cache import readthrough, ttl

    value, _state = readthrough._compute(query_type, compute)
    try:
        with readthrough.redis_call("set") as client:
            client.set(key, value, ex=ttl.key_ttl(key))
    except readthrough.CacheUnavailable:
        pass
    return value


def _emit(events: Sequence) -> None:
    """Every event: the organization's keys deleted by pattern, then the event sent."""
    from realtime import broadcast
    from stats import cache
    from stats.cache import metrics

    started = time.perf_counter()
    by_org: dict[uuid.UUID, list] = {}
    for event in events:
        by_org.setdefault(event.org_id, []).append(event)
    for org_id, org_events in by_org.items():
        try:
            with cache.boundary.redis_call("invalidate"):
                deleted = caches["default"].delete_pattern(cache.org_pattern(org_id))
        except cache.CacheUnavailable:
            broadcast.BROADCAST_ERRORS.labels("invalidate").inc()
        else:
            metrics.CACHE_INVALIDATIONS.labels("org_sweep").inc()
            metrics.CACHE_KEYS_DELETED.inc(deleted)
        broadcast._send(org_id, org_events)
    broadcast.EMIT_SECONDS.observe(time.perf_counter() - started)


def _looks_up(function: Callable, name: str) -> bool:
    """Whether `function` (or a function nested in it) reads the module global `name`: a
    replaced global only takes effect where the code looks it up when it runs."""
    codes = [function.__code__]
    while codes:
        code = codes.pop()
        if name in code.co_names:
            return True
        codes += [const for const in code.co_consts if isinstance(const, types.CodeType)]
    return False


class CardDesign(AppConfig):
    name = "bench"
    label = "bench_card"
    verbose_name = "the cache as first specified (benchmark only)"

    def ready(self) -> None:
        from realtime import broadcast
        from stats import cache
        from stats.cache import boundary, metrics, readthrough, ttl

        # The project's code may have moved on: then the servers refuse to start (the peers
        # scenario prints why) rather than measure the project's own design under this name.
        for module, caller, name in (
            (readthrough, "read_through", "_fill"),
            (broadcast, "emit_on_commit", "emit"),
            (readthrough, "_take_token", "STALE_SET_PROTECTION"),
        ):
            if not hasattr(module, name) or not _looks_up(getattr(module, caller, lambda: None), name):
                raise ImproperlyConfigured(
                    f"bench/card.py: {module.__name__}.{caller} no longer goes through {name}; update the variant"
                )
        used = {readthrough: ("_compute", "redis_call", "CacheUnavailable"), ttl: ("key_ttl",),
                boundary: ("redis_call",), cache: ("org_pattern", "CacheUnavailable"),
                metrics: ("CACHE_INVALIDATIONS", "CACHE_KEYS_DELETED"),
                broadcast: ("_send", "BROADCAST_ERRORS", "EMIT_SECONDS")}  # fmt: skip
        missing = [f"{module.__name__}.{name}" for module, names in used.items() for name in names
                   if not hasattr(module, name)]  # fmt: skip
        if missing:
            raise ImproperlyConfigured(f"bench/card.py uses what is gone: {', '.join(missing)}; update the variant")
        if list(inspect.signature(readthrough._fill).parameters) != list(inspect.signature(_fill).parameters):
            raise ImproperlyConfigured("bench/card.py: readthrough._fill takes other arguments now; update the variant")
        readthrough.STALE_SET_PROTECTION = False
        readthrough._fill = _fill
        broadcast.emit = _emit
