"""The project's settings with one experimental change, named by BENCH_VARIANT (bench/variants.py).

Used only to measure what a hot-path change would gain before proposing it, or (`card`) to run a
design the project does not follow beside it; never in production.
"""

from __future__ import annotations

import os

from dashboard_project.settings import *  # noqa: F403
from dashboard_project.settings import INSTALLED_APPS, MIDDLEWARE

VARIANT = os.environ.get("BENCH_VARIANT", "baseline")

if VARIANT == "no-fast-path":
    CACHE_FAST_PATH = False
elif VARIANT == "no-tracked-copies":
    CACHE_NEAR_MAX_MB = 0  # every lane hit reads Redis (one round trip), as before stats/near.py
elif VARIANT == "no-prometheus-middleware":
    MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("django_prometheus.")]
elif VARIANT == "session-only-middleware":
    # What the JSON API needs: the session (authorization reads it); nothing else.
    MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
elif VARIANT == "signed-cookie-sessions":
    SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
elif VARIANT == "no-redis-round-trip":
    # An upper bound, not a design: lane reads answered from a plain dict after the first, so
    # the difference to the baseline is what keeping the tracked copies exact costs a hit (the
    # socket check for pushes, the lock). Not correct (never invalidated).
    MIDDLEWARE = ["bench.variant_settings.memoized_lane_reads", *MIDDLEWARE]
elif VARIANT == "card":
    # The cache as first specified (bench/card.py), for the peers scenario: no fast path, no
    # tracked copies, and delete_pattern at django-redis's default SCAN batch.
    CACHE_FAST_PATH = False
    CACHE_NEAR_MAX_MB = 0
    DJANGO_REDIS_SCAN_ITERSIZE = 10
    INSTALLED_APPS = [*INSTALLED_APPS, "bench.card.CardDesign"]
elif VARIANT == "no-in-place-updates":
    # Readings update no cached value in place (the exactness test's switch): peers scenario.
    INSTALLED_APPS = [*INSTALLED_APPS, "tests.switches.WithoutInPlaceUpdates"]
elif VARIANT != "baseline":
    raise ValueError(f"unknown BENCH_VARIANT {VARIANT!r}")


def memoized_lane_reads(get_response):
    """Middleware of the no-redis-round-trip variant: replaces the lane's one Redis call."""
    from stats import cache

    read, seen = cache.read_for_session, {}

    def memoized(session_key: str, key: str):
        if (session_key, key) not in seen:
            seen[(session_key, key)] = read(session_key, key)
        return seen[(session_key, key)]

    cache.read_for_session = memoized
    return get_response
