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

import time
import uuid
from collections.abc import Callable, Sequence

from django.apps import AppConfig
from django.core.cache import caches


def _fill(key: str, query_type: str, compute: Callable[[], bytes]) -> bytes:
    """A miss: compute, store for the TTL, whatever happened meanwhile."""
    from stats import cache

    value = cache._compute(query_type, compute)
    try:
        with cache._redis("set") as client:
            client.set(key, value, ex=cache.ttl_seconds())
    except cache.CacheUnavailable:
        pass
    return value


def _emit(events: Sequence) -> None:
    """Every event: the organization's keys deleted by pattern, then the event sent."""
    from realtime import broadcast
    from stats import cache

    started = time.perf_counter()
    by_org: dict[uuid.UUID, list] = {}
    for event in events:
        by_org.setdefault(event.org_id, []).append(event)
    for org_id, org_events in by_org.items():
        try:
            with cache._redis("invalidate"):
                deleted = caches["default"].delete_pattern(cache.org_pattern(org_id))
        except cache.CacheUnavailable:
            broadcast.BROADCAST_ERRORS.labels("invalidate").inc()
        else:
            cache.CACHE_INVALIDATIONS.labels("org_sweep").inc()
            cache.CACHE_KEYS_DELETED.inc(deleted)
        broadcast._send(org_id, org_events)
    broadcast.EMIT_SECONDS.observe(time.perf_counter() - started)


class CardDesign(AppConfig):
    name = "bench"
    label = "bench_card"
    verbose_name = "the cache as first specified (benchmark only)"

    def ready(self) -> None:
        from realtime import broadcast
        from stats import cache

        cache.STALE_SET_PROTECTION = False
        cache._fill = _fill
        broadcast.emit = _emit
