"""What every server process does once the application is loaded (asgi.py, wsgi.py)."""

import gc

from django.urls import get_resolver


def freeze_startup_heap() -> None:
    """Move what loading built (settings, apps, models, the URLconf and its views) out of the
    cyclic garbage collector's reach: it lives as long as the process anyway.

    A full (generation 2) collection walks every tracked object and pauses every request and
    WebSocket frame in flight: 60-85 ms in daphne and the gunicorn workers with the startup heap
    tracked, 2-6 ms with it frozen (bench/RESULTS.md). Full collections are rare in a steady
    server, but a dashboard is open all day. Frozen objects are skipped by every later
    collection; what the requests create is collected as before. Under gunicorn this runs in
    each worker, which loads the application after the fork.
    """
    get_resolver().url_patterns  # noqa: B018 - imports the views now rather than on the first request
    gc.collect()
    gc.freeze()
