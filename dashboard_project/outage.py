"""One log line when an outside system starts failing, one when it answers again.

Under load a Redis outage fails every operation: a line each (two per uplink, a traceback per
WebSocket connect) floods the log just when it is read. The boundaries that own an outside system
(stats/cache.py, realtime/broadcast.py) report every failure and every success here instead. The
first failure is logged with its error; the first success a quiet second after the last failure,
with how long the failures went on and how many there were. Their metrics count each failure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

# A success sooner than this after a failure does not end the trouble: with a partial failure
# (writes refused while reads pass, one broken connection in a pool) every failure would
# otherwise start an outage of its own, a line each again.
QUIET_SECONDS = 1.0


class OutageLog:
    def __init__(
        self,
        logger: logging.Logger,
        system: str,
        *,
        counted_in: str,
        prefix: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger, self._system, self._counted_in, self._prefix = logger, system, counted_in, prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None  # the first failure of the outage in progress
        self._last = 0.0
        self._failed = 0
        self._skipped = 0

    def failed(self, operation: str, error: object) -> None:
        with self._lock:
            self._failed += 1
            self._last = self._clock()
            if self._since is not None:
                return
            self._since = self._last
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

    def answered(self) -> None:
        if self._since is None:  # every successful operation passes here: no lock unless in trouble
            return
        with self._lock:
            if self._since is None or self._clock() - self._last < QUIET_SECONDS:
                return
            seconds, failed, skipped = self._last - self._since, self._failed, self._skipped
            self._clear()
        self._logger.warning(
            "%s%s answering again: %d operations failed over %.1fs%s",
            self._prefix,
            self._system,
            failed,
            seconds,
            f", {skipped} more skipped" if skipped else "",
        )

    def forget(self) -> None:
        """Drop the outage in progress without a line (tests that point the system elsewhere)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._since, self._failed, self._skipped = None, 0, 0
