"""Start a set of processes, stop them all together: on SIGTERM/SIGINT, or when one of them exits."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
WATCHED = STOP_SIGNALS | {signal.SIGCHLD}
START_SECONDS = 60
# nginx gives WebSockets 10 s to close (worker_shutdown_timeout); gunicorn's workers 30 s to
# finish their requests (its graceful_timeout). Whatever is still running after this is killed.
STOP_FIRST_SECONDS = 15
STOP_LAST_SECONDS = 35
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class Child:
    name: str
    argv: list[str]
    stop_signal: int
    stops_last: bool = False  # stopped once the others are gone (the proxy finishes its requests first)
    socket: Path | None = None  # ready once this Unix socket exists
    # Ready once this file holds the child's pid: nginx writes it after binding its ports (a
    # connection test would be fooled by whatever else listens there).
    pid_file: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, cwd: Path) -> None:
        # Its own process group, so a Ctrl-C in the terminal reaches only the supervisor, which
        # stops the children in order.
        self.process = subprocess.Popen(self.argv, cwd=cwd, start_new_session=True, preexec_fn=_in_child)

    def ready(self) -> bool:
        if self.socket is not None and not self.socket.exists():
            return False
        if self.pid_file is None:
            return True
        try:
            return self.process is not None and self.pid_file.read_text().strip() == str(self.process.pid)
        except OSError:
            return False

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def clean(self) -> bool:
        """Exited 0, or ended by the signal it was sent (what a supervisor counts as a clean stop)."""
        return self.exited() in (0, -self.stop_signal)


def _in_child() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WATCHED)
    # If the supervisor is killed outright, the kernel stops this child too.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, backends: list[Child], proxy: Child, *, ready_banner: Callable[[], None]) -> None:
        self.backends, self.proxy, self.ready_banner = backends, proxy, ready_banner

    @property
    def children(self) -> list[Child]:
        return [*self.backends, self.proxy]

    def run(self, *, cwd: Path) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
        reason, by_signal = None, False
        try:
            for child in self.backends:
                child.start(cwd)
            reason = self._wait(lambda: all(c.ready() for c in self.backends))
            if reason is None:  # the proxy opens the port once there is something behind it
                self.proxy.start(cwd)
                reason = self._wait(self.proxy.ready)
            if reason is None:
                self.ready_banner()
                reason = self._wait(None)
            by_signal = reason.startswith("signal")
            print(f"serve: {reason}; stopping", file=sys.stderr, flush=True)
        finally:
            self._stop()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WATCHED)
        unclean = [c for c in self.children if c.process is not None and not c.clean()]
        for child in unclean:
            print(f"serve: {child.name} ended with status {child.exited()}", file=sys.stderr, flush=True)
        return 0 if by_signal and not unclean else 1

    def _wait(self, ready: Callable[[], bool] | None) -> str | None:
        """None once `ready()` holds; else why not: a stop signal, a child's exit, the start timeout.
        With `ready` None, waits for the signal or the exit alone."""
        deadline = time.monotonic() + START_SECONDS
        while True:
            for child in self.children:
                if child.exited() is not None:
                    return f"{child.name} exited with status {child.exited()}"
            if ready is not None:
                if ready():
                    return None
                if time.monotonic() > deadline:
                    return f"not ready within {START_SECONDS} s"
            # Signals are blocked, so none is lost between the checks above and this wait.
            info = signal.sigtimedwait(WATCHED, 0.1 if ready is not None else 3600)
            if info is not None and info.si_signo in STOP_SIGNALS:
                return f"signal {signal.Signals(info.si_signo).name}"

    def _stop(self) -> None:
        first = [c for c in self.children if not c.stops_last]
        last = [c for c in self.children if c.stops_last]
        for group, seconds in ((first, STOP_FIRST_SECONDS), (last, STOP_LAST_SECONDS)):
            running = [c for c in group if c.process is not None and c.exited() is None]
            for child in running:
                child.process.send_signal(child.stop_signal)
            deadline = time.monotonic() + seconds
            for child in running:
                try:
                    child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    print(f"serve: {child.name} did not stop within {seconds} s; killed", file=sys.stderr)
                    os.killpg(child.process.pid, signal.SIGKILL)
                    child.process.wait()
        for child in self.children:  # workers left behind by a master that died on its own
            if child.process is not None:
                try:
                    os.killpg(child.process.pid, signal.SIGKILL)
                    print(f"serve: killed what {child.name} left running", file=sys.stderr, flush=True)
                except ProcessLookupError:
                    pass


def process_tree(pid: int) -> list[int]:
    """A process and its descendants, from /proc."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(p for child in children for p in process_tree(int(child)))]
