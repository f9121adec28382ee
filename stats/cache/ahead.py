"""Refresh-ahead: a value read near the end of its TTL is recomputed before it expires, by one
process, in the background, so that the reads after it are still hits.

The dashboards poll every few seconds; at a 60 s TTL each organization's counts would otherwise
expire once a minute and the first poll after would miss (with its dashboard waiting for the
database). The decision is probabilistic early recomputation (XFetch: Vattani, Chierichetti and
Lowenstein, "Optimal Probabilistic Cache Stampede Prevention", VLDB 2015): a read recomputes when
`-delta * beta * ln(rand())` reaches the time left. `delta * beta` is taken as the query's refresh
lead from the catalogue (at least the measured computation time): the polls are seconds apart, so
the lead must cover a few of them, where the paper's readers come many times per computation.
A refresh runs only if no other process holds the key's single-flight lock.
"""

from __future__ import annotations

import logging
import math
import queue
import random
import threading
from collections.abc import Callable

from django.db import close_old_connections

from .keys import CacheKey
from .metrics import CACHE_REFRESH_AHEAD

logger = logging.getLogger("stats.cache")

QUEUE_SIZE = 64
_compute_seconds: dict[str, float] = {}
_draw = random.random  # uniform in [0, 1): the draw each read makes


def observe_compute(query_type: str, seconds: float) -> None:
    """The measured computation time of a query type (moving average): XFetch's delta."""
    previous = _compute_seconds.get(query_type)
    _compute_seconds[query_type] = seconds if previous is None else 0.8 * previous + 0.2 * seconds


def due(query_type: str, lead: float, seconds_left: float | None) -> bool:
    """Whether a read with `seconds_left` of TTL should recompute now (XFetch)."""
    if seconds_left is None or seconds_left <= 0 or lead <= 0:
        return False
    gap = max(lead, _compute_seconds.get(query_type, 0.0)) * -math.log(max(_draw(), 1e-12))
    return gap >= seconds_left


class _Refresher:
    """One background thread per process running refreshes one at a time; a key already waiting
    is not queued twice, and a full queue drops the request (the key then expires, as without)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[CacheKey, Callable[[], object]] | None] = queue.Queue(QUEUE_SIZE)
        self._pending: set[str] = set()
        self._thread: threading.Thread | None = None

    def submit(self, key: CacheKey, refresh: Callable[[], object]) -> bool:
        with self._lock:
            if key in self._pending:
                return False
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="cache-refresh-ahead", daemon=True)
                self._thread.start()
            try:
                self._queue.put_nowait((key, refresh))
            except queue.Full:
                return False
            self._pending.add(key)
            return True

    def stop(self, timeout: float = 5.0) -> None:
        """Let the refresh in progress finish, then end the thread (a process stopping)."""
        with self._lock:
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            key, refresh = job
            try:
                refresh()
                CACHE_REFRESH_AHEAD.labels(key.query_type, "refreshed").inc()
            except Exception as exc:  # a failed refresh leaves the key to expire, as without one
                CACHE_REFRESH_AHEAD.labels(key.query_type, "failed").inc()
                logger.warning("Refresh ahead of %s failed: %r", key, exc)
            finally:
                with self._lock:
                    self._pending.discard(key)
                close_old_connections()


refresher = _Refresher()


def refresh_ahead(key: CacheKey, lead: float, seconds_left: float | None, refresh: Callable[[], object]) -> bool:
    """Schedule `refresh()` in the background when a read of `key` is due (see `due`)."""
    if not due(key.query_type, lead, seconds_left):
        return False
    scheduled = refresher.submit(key, refresh)
    CACHE_REFRESH_AHEAD.labels(key.query_type, "scheduled" if scheduled else "skipped").inc()
    return scheduled
