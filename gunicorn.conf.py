"""Gunicorn's settings for the production HTTP server; gunicorn reads ./gunicorn.conf.py by
itself when started from the repository's root (`gunicorn --workers 2 dashboard_project.wsgi:application`).

Stopping: SIGTERM and SIGINT both stop gracefully. The master stops listening and tells each
worker to finish its request in flight (at most SHUTDOWN_GRACE_SECONDS, then SIGKILL); each
worker then closes its own connections (`dashboard_project.shutdown`) and every process exits 0.
Gunicorn's default treats SIGINT (Ctrl-C) as a quick shutdown, which drops requests in flight.
The production topology (`make serve`, ops/serve.py) passes this file with -c.
"""

from __future__ import annotations

import os

from prometheus_client import multiprocess

from dashboard_project.settings import SHUTDOWN_GRACE_SECONDS
from dashboard_project.shutdown import close_process_resources, ignore_stop_signals_at_exit, on_stop_signal

# The settings module's value, read without configuring Django in the master: the application
# each worker loads names its own settings (the benchmarks' floor serves another module).
graceful_timeout = SHUTDOWN_GRACE_SECONDS
# gunicorn 27's runtime control socket defaults to one path in the home directory, shared by every
# gunicorn the user runs (a test's server beside `make serve` would take it over). Older gunicorns
# ignore the name.
control_socket_disable = True


def on_starting(server) -> None:
    # The master queues signals and looks its handler up by name when it handles one.
    server.handle_int = server.handle_term
    ignore_stop_signals_at_exit()


def post_worker_init(worker) -> None:
    # A worker stops after its request in flight (gunicorn's SIGTERM), on SIGINT too.
    on_stop_signal(lambda: setattr(worker, "alive", False))


def worker_exit(server, worker) -> None:
    # Also called in the master for a worker that vanished; only a worker has connections.
    if worker.pid == os.getpid():
        close_process_resources()


def child_exit(server, worker) -> None:
    """A worker that exited (crashed, timed out) leaves the live gauges' sums, so /metrics does
    not keep its last WebSocket count or breaker state until the next restart."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
