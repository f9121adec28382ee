"""The project's settings with one experimental change, named by BENCH_VARIANT (bench/variants.py).

Used only to measure what a hot-path change would gain before proposing it; never in production.
"""

from __future__ import annotations

import os

from dashboard_project.settings import *  # noqa: F403
from dashboard_project.settings import MIDDLEWARE

VARIANT = os.environ.get("BENCH_VARIANT", "baseline")

if VARIANT == "no-fast-path":
    CACHE_FAST_PATH = False
elif VARIANT == "no-prometheus-middleware":
    MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("django_prometheus.")]
elif VARIANT == "session-only-middleware":
    # What the JSON API needs: the session (authorization reads it); nothing else.
    MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
elif VARIANT == "signed-cookie-sessions":
    SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
elif VARIANT != "baseline":
    raise ValueError(f"unknown BENCH_VARIANT {VARIANT!r}")
