"""gunicorn settings of the production topology (ops/serve.py passes this file with -c)."""

from __future__ import annotations

from prometheus_client import multiprocess

# gunicorn 27's runtime control socket defaults to one path in the home directory, shared by every
# gunicorn the user runs (a test topology beside `make serve` would take it over); ops/serve.py
# starts and stops this one. Older gunicorns ignore the name.
control_socket_disable = True


def child_exit(server: object, worker: object) -> None:
    """A worker that exited (crashed, timed out) leaves the live gauges' sums, so /metrics does
    not keep its last WebSocket count or breaker state until the next restart."""
    multiprocess.mark_process_dead(worker.pid)
