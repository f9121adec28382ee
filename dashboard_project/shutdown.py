"""What every process does when it stops: the server entry points (`asgi_server.py`,
`gunicorn.conf.py`) and the long-running commands (`sweep_devices --every`, `simulate_ttn`).

A stop is: the first SIGTERM or SIGINT asks the process to stop; it finishes what is in flight
(bounded); then `close_process_resources` closes, in order, what the process keeps open beside
its requests; then it returns from its main function and exits 0.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signal(stop: Callable[[], None]) -> None:
    """Call `stop` on the first SIGTERM or SIGINT (in the main thread, between bytecodes); the
    signals that follow do nothing. A stop often brings two: a supervisor signals the whole
    process group and a parent (gunicorn's master, `make run`'s shell) forwards its own.

    System calls in flight are restarted, not interrupted, by these signals (a gunicorn worker
    reading a request body finishes reading it).
    """
    stopping = False

    def handler(signum: int, frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            logger.info("%s received: stopping", signal.Signals(signum).name)
            stop()

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)  # also replaces SIG_IGN: a shell starts `cmd &` with SIGINT ignored
        signal.siginterrupt(signum, False)
    ignore_stop_signals_at_exit()


def ignore_stop_signals_at_exit() -> None:
    """At interpreter exit, ignore SIGTERM and SIGINT from then on.

    Python puts the handlers it installed back to the default action at the very end of its
    shutdown, and a late repeat of the signal would then kill a process that is exiting cleanly
    (status -15 instead of 0); it leaves ignored signals alone. Not earlier, in the handler:
    Python reports a signal that arrived before the switch to SIG_IGN as an OSError ("ignored
    due to race condition") in whatever the main thread was doing.
    """
    atexit.unregister(_ignore_stop_signals)  # once, however often it is asked for
    atexit.register(_ignore_stop_signals)


def _ignore_stop_signals() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


@contextmanager
def stop_requested_event() -> Iterator[threading.Event]:
    """For a command's loop: an event the first SIGTERM or SIGINT sets (`on_stop_signal`); the
    loop finishes the step it is in, then checks it, and waits on it instead of sleeping. The
    previous handlers come back on leaving unless it was set (`call_command` in a test process)."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    stop = threading.Event()
    on_stop_signal(stop.set)
    try:
        yield stop
    finally:
        if not stop.is_set():
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def close_process_resources() -> None:
    """Close what this process keeps open beside its requests, once they are done:
    0. the refresh-ahead thread, after the refresh it is running (it uses all that follows);
    1. the channel layer's send loop, once the sends the finished requests queued are made (its
       thread, event loop and Redis connections);
    2. the tracked copies' Redis connection (`stats.near`);
    3. the database connections, and psycopg's pool with its threads.
    Nothing is left running when the interpreter shuts down.
    """
    # Imported here: this module is imported before Django is set up (gunicorn.conf.py).
    from django.apps import apps
    from django.db import connections

    if apps.is_installed("stats"):  # not in an application of other settings (the bench's floor)
        from realtime.broadcast import send_loop_close
        from stats.cache import ahead, near_close

        ahead.refresher.stop()
        send_loop_close()
        near_close()
    for connection in connections.all(initialized_only=True):
        connection.close()
    for alias in connections:
        if connections.settings[alias]["OPTIONS"].get("pool"):
            connections[alias].close_pool()
