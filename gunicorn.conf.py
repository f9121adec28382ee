"""Gunicorn's settings for the production HTTP server; gunicorn reads ./gunicorn.conf.py by
itself when started from the repository's root (`gunicorn --workers 2 dashboard_project.wsgi:application`).

Stopping: SIGTERM and SIGINT both stop gracefully. The master stops listening and tells each
worker to finish its request in flight (at most SHUTDOWN_GRACE_SECONDS, then SIGKILL); each
worker then closes its own connections (`dashboard_project.shutdown`) and every process exits 0.
Gunicorn's default treats SIGINT (Ctrl-C) as a quick shutdown, which drops requests in flight.
"""

from __future__ import annotations

import os

from django.conf import settings

from dashboard_project.shutdown import close_process_resources, ignore_stop_signals_at_exit, on_stop_signal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_project.settings")
graceful_timeout = settings.SHUTDOWN_GRACE_SECONDS


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
