"""How long a cached value lives: its query's TTL from the catalogue, and for a 24 h figure no
later than the next 15-minute boundary, where its window moves."""

from __future__ import annotations

from datetime import UTC, datetime

from ..windows import ms_to_next_bucket
from .boundary import ttl_seconds
from .keys import CacheKey


def key_ttl(key: CacheKey) -> int:
    """The key's TTL: its query's, from the catalogue (a principal's: the default)."""
    query = _query(key)
    return query.ttl_seconds() if query is not None else ttl_seconds()


def key_ttl_ms(key: CacheKey, ttl: int | None = None) -> int:
    """How long a value stored now lives, in ms: the key's TTL (or `ttl` seconds), ending no later
    than the next 15-minute boundary for a windowed query's value (a 24 h figure changes there
    when its oldest bucket leaves the window, with no reading to update it)."""
    query = _query(key)
    ms = (ttl or (query.ttl_seconds() if query is not None else ttl_seconds())) * 1000
    if query is not None and query.windowed:
        ms = min(ms, ms_to_next_bucket(datetime.now(UTC)))
    return max(ms, 1)


def _query(key: CacheKey):  # -> queries.Query | None (the catalogue is imported late)
    from .. import queries  # the catalogue reads the models: loaded once the app registry is ready

    return queries.by_name(key.query_type)
