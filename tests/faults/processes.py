"""Private Redis and PostgreSQL servers the fault tests may kill (never the machine's shared ones)."""

from __future__ import annotations

import glob
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.live import LiveServer, free_port
from tests.services import port_open


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, every: float = 0.05) -> object:
    """Poll `condition` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(every)


@dataclass
class RedisProcess:
    """One redis-server (or sentinel) on a loopback port of its own, started in `directory`."""

    directory: Path
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    config: str | None = None  # a config file's text (sentinels rewrite theirs, so it is a file)
    process: subprocess.Popen | None = None

    def start(self) -> RedisProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = ["redis-server"]
        if self.config is not None:
            conf = self.directory / f"redis-{self.port}.conf"
            if not conf.exists():  # a restarted sentinel keeps the state it rewrote into its file
                conf.write_text(self.config)
            command.append(str(conf))
        command += ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--daemonize", "no", "--dir", str(self.directory), *self.extra_args]
        log = (self.directory / f"redis-{self.port}.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._answers, timeout=10, what=f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis-server on {self.port} exited: {self.log_tail()}")
        try:
            answering = redis.Redis(port=self.port, socket_timeout=0.5).info("server")["process_id"]
        except redis.RedisError:
            return False
        if answering != self.process.pid:
            # Another server holds the port (ours cannot bind it and is exiting): say so, rather
            # than let the test talk to a stranger.
            raise RuntimeError(f"port {self.port} is served by process {answering}, not by ours ({self.process.pid})")
        return True

    def log_tail(self) -> str:
        log = self.directory / f"redis-{self.port}.log"
        return log.read_text()[-2000:] if log.exists() else ""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to clients, like a crashed host."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill()


def stop_all(*things: RedisProcess | LiveServer | None) -> None:
    for thing in things:
        if thing is not None:
            thing.stop()


# --- /metrics ------------------------------------------------------------------------------------
def scrape(server: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the app's /metrics, keyed by (name, sorted labels)."""
    response = httpx.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200, response.text[:300]
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- a private PostgreSQL cluster ----------------------------------------------------------------
def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed under /usr/lib/postgresql")
    return found[-1]


@dataclass
class PostgresCluster:
    """A throw-away cluster owned by the postgres user (initdb refuses to run as root).

    It lives in its own directory under /tmp: pytest's tmp_path is private to root, and the
    postgres user must be able to reach its data directory and socket.
    """

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="faults-pg-")))
    port: int = field(default_factory=free_port)

    def _as_postgres(self, *command: str) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")

    def init(self) -> PostgresCluster:
        shutil.chown(self.directory, "postgres", "postgres")
        self._as_postgres(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        return self

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.directory / "postgres.log")
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop_immediately(self) -> None:
        """`-m immediate`: backends die at once, in-flight transactions are lost, like a crash."""
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        return port_open("127.0.0.1", self.port, timeout=0.2)

    def stop(self) -> None:
        """Stop it if it runs and delete the cluster."""
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                ["runuser", "-u", "postgres", "--", _pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.directory, ignore_errors=True)
