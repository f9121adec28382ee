"""One log line when an outside system starts failing, one when it answers again.

Under load a Redis outage fails every operation: a line each (two per uplink, a traceback per
WebSocket connect) floods the log just when it is read. The boundaries that own an outside system
(stats/cache.py, realtime/broadcast.py) report every failure and every success here instead. The
first failure is logged with its error; the first success after it, with how long the trouble
lasted and how many operations failed meanwhile. Their metrics count each failure.
"""

from __future__ import annotations

import logging
import threading
import time


class OutageLog:
    def __init__(self, logger: logging.Logger, system: str, *, counted_in: str, prefix: str = "") -> None:
        self._logger, self._system, self._counted_in, self._prefix = logger, system, counted_in, prefix
        self._lock = threading.Lock()
        self._since: float | None = None
        self._failed = 0
        self._skipped = 0

    def failed(self, operation: str, error: object) -> None:
        with self._lock:
            self._failed += 1
            if self._since is not None:
                return
            self._since = time.monotonic()
        self._logger.error(
            "%s%s error: %s (%s unavailable; further failures are counted in %s, not logged, until it answers again)",
            self._prefix,
            operation[:1].upper() + operation[1:],
            error,
            self._system,
            self._counted_in,
        )

    def skipped(self) -> None:
        """An operation not even tried because of the outage (a circuit breaker is open)."""
        if self._since is None:
            return
        with self._lock:
            self._skipped += 1

    def forget(self) -> None:
        """Drop an outage in progress without a line (tests that point the system elsewhere)."""
        with self._lock:
            self._since, self._failed, self._skipped = None, 0, 0

    def answered(self) -> None:
        if self._since is None:  # every successful operation passes here: no lock unless in trouble
            return
        with self._lock:
            if self._since is None:
                return
            seconds, failed, skipped = time.monotonic() - self._since, self._failed, self._skipped
            self._since, self._failed, self._skipped = None, 0, 0
        self._logger.warning(
            "%s%s answering again after %.1fs: %d operations failed meanwhile%s",
            self._prefix,
            self._system,
            seconds,
            failed,
            f", {skipped} more skipped" if skipped else "",
        )
