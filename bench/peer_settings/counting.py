"""Count a peer's cache lookups into `bench_peer_cache_reads_total{query_type, outcome}`.

The peers keep no counters of their own in Prometheus: cacheops sends a `cache_read` signal per
lookup (its documented way of keeping stats); cachalot has none, so its one lookup function is
wrapped and a lookup that had to run the query is a miss. Redis's keyspace_hits cannot stand in:
it counts the whole server (every db, the sessions, anyone else's use of the server), not a db.

Only lookups made inside the dashboard's selectors are counted, labelled with the query type
the selector computes (the project's own hit rate is per query type too); the authorization
lookups around them (user, memberships, session) are left out, as the project's hit rate
leaves out its `authz` keys.
"""

from __future__ import annotations

import functools
from contextvars import ContextVar

from django.apps import AppConfig
from prometheus_client import Counter

PEER_READS = Counter(
    "bench_peer_cache_reads", "A peer ORM cache's lookups inside the dashboard's selectors", ["query_type", "outcome"]
)
_query_type: ContextVar[str | None] = ContextVar("bench_peer_query_type", default=None)


def _labelled(function, query_type: str):
    @functools.wraps(function)
    def run(*args: object, **kwargs: object) -> object:
        token = _query_type.set(query_type)
        try:
            return function(*args, **kwargs)
        finally:
            _query_type.reset(token)

    return run


def _label_selectors() -> None:
    """Every cached query's selector, labelled with the query's name; the catalogue looks the
    selectors up by name on each call, so wrapping them in their module is enough."""
    from stats import queries, selectors

    for query in queries.QUERIES:
        if query.cached:
            setattr(selectors, query.selector, _labelled(getattr(selectors, query.selector), query.name))


def _count(hit: bool) -> None:
    query_type = _query_type.get()
    if query_type is not None:
        PEER_READS.labels(query_type, "hit" if hit else "miss").inc()


class CachalotReads(AppConfig):
    name = "bench.peer_settings"
    label = "bench_cachalot_reads"

    def ready(self) -> None:
        from cachalot import monkey_patch

        lookup = monkey_patch._get_result_or_execute_query

        def counted(execute_query, cache, cache_key, table_cache_keys):
            executed = False

            def execute():
                nonlocal executed
                executed = True
                return execute_query()

            result = lookup(execute, cache, cache_key, table_cache_keys)
            _count(not executed)
            return result

        # The patched compiler looks the function up in its module on every query.
        monkey_patch._get_result_or_execute_query = counted
        _label_selectors()


class CacheopsReads(AppConfig):
    name = "bench.peer_settings"
    label = "bench_cacheops_reads"

    def ready(self) -> None:
        from cacheops.signals import cache_read

        def count(sender, func, hit: bool, **kwargs: object) -> None:
            _count(hit)

        cache_read.connect(count, weak=False, dispatch_uid="bench.peer_settings.counting")
        _label_selectors()
