"""The production topology (ops/serve.py, what `make serve` runs) for tests: nginx with TLS on a
free loopback port in front of gunicorn and daphne, with the production settings module.

Its database is a SQLite file of its own (migrated and seeded with `seed_demo` once); Redis is the
suite's databases (TEST_REDIS_CACHE_DB / TEST_REDIS_CHANNELS_DB).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.live import free_port

REPO = Path(__file__).resolve().parent.parent
START_SECONDS = 90
STOP_SECONDS = 60
# Deadlines of the clients talking to it, generous for a machine other suites load too.
WAIT_SECONDS = 30


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed pair for 127.0.0.1 and localhost, made with openssl like an operator would."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def base_env(database: Path) -> dict[str, str]:
    """The environment of the topology and of management commands on its database: the production
    settings module (not the suite's), the suite's Redis databases."""
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR"}}
    env.update(
        DATABASE_URL=f"sqlite:///{database}",
        REDIS_CACHE_DB=os.environ.get("TEST_REDIS_CACHE_DB", "11"),
        REDIS_CHANNELS_DB=os.environ.get("TEST_REDIS_CHANNELS_DB", "12"),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(database: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=base_env(database), capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def seeded_database(workdir: Path) -> Path:
    database = workdir / "serve.sqlite3"
    manage(database, "migrate", "--noinput", "-v", "0")
    manage(database, "seed_demo", "--orgs", "2", "--units", "3", "--days", "0.2")
    return database


@dataclass
class Topology:
    workdir: Path
    database: Path
    process: subprocess.Popen
    port: int
    http_port: int
    token: str
    cert: Path
    log: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def tls(self) -> ssl.SSLContext:
        """Verifies the topology's certificate (its names included) instead of skipping the check."""
        return ssl.create_default_context(cafile=str(self.cert))

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.tls, timeout=WAIT_SECONDS)

    def metrics(self) -> str:
        with self.client() as client:
            response = client.get("/metrics", headers={"Authorization": f"Bearer {self.token}"})
        assert response.status_code == 200, response.text[:300]
        return response.text

    def wait_for_metric(self, name: str, expected: float) -> None:
        """Until /metrics shows `expected` for `name` (a gauge another connection's end moves)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while (seen := value(self.metrics(), name)) != expected:
            assert time.monotonic() < deadline, f"{name} is {seen}, not {expected}, after {WAIT_SECONDS} s"
            time.sleep(0.1)

    def manage(self, *args: str) -> str:
        return manage(self.database, *args)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, signum: int = signal.SIGTERM, *, to_group: bool = False) -> int:
        """Its exit status after `signum`: sent to it alone (a service manager), or to its whole
        process group (`to_group`, a terminal's Ctrl-C)."""
        if self.process.poll() is None:
            if to_group:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def start(workdir: Path, database: Path, *, tls_pair: tuple[Path, Path] | None = None) -> Topology:
    """ops/serve.py on free loopback ports; with `tls_pair` None it makes its own self-signed pair."""
    port, http_port, token = free_port(), free_port(), secrets.token_urlsafe(16)
    runtime = workdir / "runtime"
    env = base_env(database) | {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "METRICS_TOKEN": token,
        "SERVE_PORT": str(port),
        "SERVE_HTTP_PORT": str(http_port),
        "SERVE_RUNTIME_DIR": str(runtime),
    }
    if tls_pair is not None:
        env |= {"SERVE_TLS_CERT": str(tls_pair[0]), "SERVE_TLS_KEY": str(tls_pair[1])}
    log = workdir / "serve.log"
    with log.open("wb") as out:
        # Its own session, like a service manager would start it: the test's signals reach only it.
        process = subprocess.Popen(
            [sys.executable, "ops/serve.py"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    cert = tls_pair[0] if tls_pair is not None else runtime / "tls" / "cert.pem"
    topology = Topology(workdir, database, process, port, http_port, token, cert, log)
    deadline = time.monotonic() + START_SECONDS
    while not re.search(r"production topology: https://", log.read_text(errors="replace")):
        if process.poll() is not None or time.monotonic() > deadline:
            topology.stop()
            raise AssertionError(f"ops/serve.py did not start (status {process.returncode}):\n{topology.log_tail()}")
        time.sleep(0.1)
    return topology


def clear_of_a_window_boundary(seconds: float = 30.0) -> None:
    """Return once the next 15-minute boundary is at least `seconds` away. The topology runs the
    production settings, whose cached trends and stats expire there; a test counting hits must
    not run across one. This waits for the clock (at most `seconds`), not for a process."""
    from stats.windows import ms_to_next_bucket

    left = ms_to_next_bucket(datetime.now(UTC)) / 1000
    if left < seconds:
        time.sleep(left + 0.5)


def value(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples `name` whose labels include `labels`."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def sign_in(client: httpx.Client, origin: str) -> httpx.Response:
    """The login form as a browser posts it: over HTTPS Django checks the Origin against the host."""
    client.get("/accounts/login/").raise_for_status()
    response = client.post(
        "/accounts/login/",
        data={"username": "demo", "password": "demo", "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers={"Origin": origin},
    )
    assert response.status_code == 302, response.text[:500]
    return response
