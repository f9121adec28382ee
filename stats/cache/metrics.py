"""The dashboard cache's Prometheus metrics (the Grafana dashboard and the alert rules read them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
CACHE_REBUILT = Counter(
    "dashboard_cache_rebuilt_total",
    "Values rebuilt on a miss from the state kept beside them (one check query, no aggregation)",
    ["query_type"],
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
# Each process has its own breaker; with several processes (PROMETHEUS_MULTIPROC_DIR) /metrics
# shows 1 while any live one has it open.
CACHE_BREAKER_OPEN = Gauge(
    "dashboard_cache_breaker_open", "1 while the Redis circuit breaker is open", multiprocess_mode="livemax"
)
CACHE_BREAKER_SKIPPED = Counter(
    "dashboard_cache_breaker_skipped_total", "Cache operations skipped because the breaker was open", ["operation"]
)
CACHE_MAINTAINED = Counter(
    "dashboard_cache_maintained_total",
    "Cached values a change updated in place (updated), or found without a state and deleted "
    "(invalidated), or not cached (absent), or could not reach (failed)",
    ["query_type", "outcome"],
)
CACHE_REFRESH_AHEAD = Counter(
    "dashboard_cache_refresh_ahead_total",
    "Values recomputed before their TTL ran out because a read came near it: scheduled, skipped "
    "(already queued, or the queue full), refreshed, failed",
    ["query_type", "outcome"],
)


def export_from_the_start(query_types: list[str], updated: list[str]) -> None:
    """Children of the per-query counters at 0, so that rate() and increase() see the first one."""
    for query_type in query_types:
        for outcome in ("scheduled", "skipped", "refreshed", "failed"):
            CACHE_REFRESH_AHEAD.labels(query_type, outcome)
    for query_type in updated:
        for outcome in ("updated", "invalidated", "absent", "failed"):
            CACHE_MAINTAINED.labels(query_type, outcome)
