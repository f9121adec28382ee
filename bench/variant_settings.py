"""The project's settings with one experimental change, named by BENCH_VARIANT (bench/variants.py).

Used only to measure what a hot-path change would gain before proposing it; never in production.
"""

from __future__ import annotations

import os

from dashboard_project.settings import *  # noqa: F403
from dashboard_project.settings import MIDDLEWARE

VARIANT = os.environ.get("BENCH_VARIANT", "baseline")

if VARIANT == "no-prometheus-middleware":
    MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("django_prometheus.")]
elif VARIANT == "session-only-middleware":
    # What the JSON API needs: the session (authorization reads it); nothing else.
    MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
elif VARIANT == "signed-cookie-sessions":
    SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
elif VARIANT == "mget-principal-and-value":
    _at = MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware") + 1
    MIDDLEWARE = [*MIDDLEWARE[:_at], "bench.variant_prefetch.PrefetchMiddleware", *MIDDLEWARE[_at:]]
elif VARIANT == "combined":
    # All of the above that keep server-side sessions: session-only middleware plus the MGET.
    MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware", "bench.variant_prefetch.PrefetchMiddleware"]
elif VARIANT != "baseline":
    raise ValueError(f"unknown BENCH_VARIANT {VARIANT!r}")
