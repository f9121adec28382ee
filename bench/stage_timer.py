"""The project's WSGI application with wall-clock timers around the uplink webhook's stages, for
`bench.stages` (never for serving: it patches the project's functions in this process).

Each webhook request appends one JSON line of stage -> milliseconds to `BENCH_STAGES_FILE`;
full (generation 2) garbage collections are timed too, as `gc2` in the request they paused.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Callable

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper

from dashboard_project.wsgi import application as project_application
from realtime import broadcast, ingest, views
from stats import cache, services

_log = open(os.environ["BENCH_STAGES_FILE"], "a", buffering=1)  # noqa: SIM115 - the process's life
_current: dict[str, float] = {}


def _add(stage: str, seconds: float) -> None:
    _current[stage] = _current.get(stage, 0.0) + seconds * 1000


def _timed(stage: str, function: Callable) -> Callable:
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _add(stage, time.perf_counter() - started)

    return timed


# (module, attribute, stage): the view calls the first two through its own imports.
for module, name, stage in (
    (views, "organization_for_secret", "org lookup"),
    (views, "parse_envelope", "parse"),
    (ingest, "_apply", "transaction body"),
    (cache, "invalidate_keys_present", "invalidate"),
    (broadcast, "_send", "send"),
    (services, "query_add_readings", "in-place update"),
    (services, "query_refresh", "refresh"),
    (broadcast, "emit", "emit (all)"),
):
    setattr(module, name, _timed(stage, getattr(module, name)))
BaseDatabaseWrapper.commit = _timed("commit", BaseDatabaseWrapper.commit)

_gc_started = [0.0]


def _gc_timer(phase: str, info: dict) -> None:
    if info["generation"] != 2:
        return
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        _add("gc2", time.perf_counter() - _gc_started[0])


gc.callbacks.append(_gc_timer)


def _sql(execute, sql, params, many, context):
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        _add("sql", time.perf_counter() - started)
        _current["queries"] = _current.get("queries", 0) + 1


def application(environ, start_response):
    _current.clear()
    started = time.perf_counter()
    try:
        with connection.execute_wrapper(_sql):
            return project_application(environ, start_response)
    finally:
        if environ.get("PATH_INFO", "").startswith("/api/webhooks/"):
            _add("request (all)", time.perf_counter() - started)
            _log.write(json.dumps(_current) + "\n")
