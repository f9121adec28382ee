"""The one Redis boundary of the dashboard cache, and its public face.

Everything that talks to the dashboard cache's Redis goes through this package; every Redis
error is caught in it (`boundary`), counted in `dashboard_cache_error_total{operation}`, logged
once per outage, and turned into "no cache": the caller then reads the database.

- `keys`: keys built once from validated UUIDs and carried as values (`CacheKey`).
- `boundary`: the client, the circuit breaker, error handling, health.
- `readthrough`: read-through with single flight and the stale-set guard; recompute; values
  rebuilt from their kept state. `ttl`: how long a value lives.
- `maintain`: in-place updates from a value's state.
- `invalidation`: named keys, or an organization's through its index.
- `lane`: the fast path's reads, from this process's tracked copies (`stats.near`).
- `scripts`, `metrics`: the Lua scripts and the Prometheus metrics.
What each query type is (scope, TTL, what changes it) is the catalogue's: `stats.queries`.
"""

from . import ahead, inspect, keys, metrics
from .ahead import refresh_ahead
from .boundary import (
    BREAKER_FAILURE_THRESHOLD,
    CacheUnavailable,
    guarded,
    health_check,
    is_enabled,
    log_startup,
    reset_breaker,
    ttl_seconds,
)
from .invalidation import delete, invalidate_keys, invalidate_keys_present, invalidate_org, scan_keys
from .keys import (
    KEY_NAMESPACE,
    META_NAMESPACE,
    CacheKey,
    InvalidKeyPart,
    cache_key,
    index_key,
    lock_key,
    make_key,
    org_pattern,
    parse_dashboard_key,
    principal_key,
    webhook_key,
)
from .lane import SessionRead, count_hits, near_close, near_forget, read_for_session, read_tracked
from .maintain import Maintained, StaleState, Update, maintain
from .readthrough import get, read_ahead, read_through, recompute, set, ttl_of  # noqa: A004 - the public verb is set


def __getattr__(name: str) -> object:
    if name == "QueryType":  # built from the catalogue on first use (`keys.QueryType`)
        return keys.QueryType
    raise AttributeError(name)


__all__ = [
    "BREAKER_FAILURE_THRESHOLD", "KEY_NAMESPACE", "META_NAMESPACE", "CacheKey", "CacheUnavailable", "InvalidKeyPart",
    "Maintained", "StaleState", "Update", "ahead", "inspect", "maintain", "metrics", "refresh_ahead",
    "QueryType", "SessionRead", "cache_key", "count_hits", "delete", "get", "guarded", "health_check", "index_key",
    "invalidate_keys", "invalidate_keys_present", "invalidate_org", "is_enabled", "lock_key", "log_startup",
    "make_key", "near_close", "near_forget", "org_pattern", "parse_dashboard_key", "principal_key", "read_ahead",
    "read_for_session", "read_through", "read_tracked", "recompute", "reset_breaker", "scan_keys", "set", "ttl_of",
    "ttl_seconds", "webhook_key",
]  # fmt: skip
