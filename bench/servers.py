"""Start and stop the servers under test on loopback, log in, read /metrics.

Every server listens on 127.0.0.1 on a free port, runs in its own process group (gunicorn forks
workers) and is stopped when its `with` block ends. Each server gets its own
PROMETHEUS_MULTIPROC_DIR, so /metrics sums all of its workers and nothing of another server's.
A `topology` is the production topology (ops/serve.py, via bench/topology.py): HTTPS through nginx
to gunicorn, /metrics behind a token.
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from bench import env
from bench.client import unverified_tls
from ops.children import process_tree

PROJECT_WSGI = "dashboard_project.wsgi:application"
PROJECT_ASGI = "dashboard_project.asgi:application"
FLOOR_WSGI = "bench.floor:wsgi_application"
FLOOR_ASGI = "bench.floor:asgi_application"
# The README's production recommendation for CACHE_TTL_SECONDS: events invalidate exactly, so the
# TTL only bounds how far the time-windowed figures (24 h compliance) lag, while every expiry costs
# a recompute per organization and key. Cached-load runs use it, so that no expiry lands inside
# a measurement (at the default 60 s all 200 organizations' keys expire together, mid-run).
PRODUCTION_TTL_SECONDS = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    kind: str  # gunicorn | daphne
    port: int
    process: subprocess.Popen
    log_path: Path
    metrics_dir: Path
    tls: bool = False
    metrics_token: str | None = None

    host = "127.0.0.1"

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=unverified_tls())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


def _command(kind: str, app: str, port: int, workers: int) -> list[str]:
    if kind == "gunicorn":
        return [
            str(env.BIN / "gunicorn"), "--workers", str(workers), "--worker-class", "sync",
            "--bind", f"127.0.0.1:{port}", "--backlog", "2048", "--log-level", "warning", app,
        ]  # fmt: skip
    if kind == "gthread":
        # gunicorn threads with HTTP keep-alive: a client's connection serves many requests.
        return [
            str(env.BIN / "gunicorn"), "--workers", str(workers), "--worker-class", "gthread", "--threads", "4",
            "--keep-alive", "10", "--bind", f"127.0.0.1:{port}", "--backlog", "2048", "--log-level", "warning", app,
        ]  # fmt: skip
    if kind == "daphne":
        return [str(env.BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "-v", "0", app]
    if kind == "topology":  # `app` is bench/topology.py's `project` or `floor`; the port comes from SERVE_PORT
        return [str(env.BIN / "python"), "-m", "bench.topology", app]
    raise ValueError(f"unknown server kind {kind!r}")


def _wait_ready(server: Server, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited; log: {server.log_path}\n{server.log_path.read_text()[-3000:]}")
        try:
            conn = server.connection(timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} not ready after {timeout}s; log: {server.log_path}")


@contextmanager
def serve(
    name: str,
    kind: str,
    app: str,
    *,
    workers: int = 2,
    ready_path: str = "/health",
    cwd: Path | None = None,
    **env_overrides: str,
) -> Iterator[Server]:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    metrics_dir = workdir / "prometheus"
    metrics_dir.mkdir()
    log_path = workdir / "server.log"
    topology = kind == "topology"
    token = secrets.token_urlsafe(16) if topology else None
    if topology:
        env_overrides = {
            "METRICS_TOKEN": token, "SERVE_PORT": str(port), "SERVE_RUNTIME_DIR": str(workdir / "serve"),
            "SERVE_GUNICORN_WORKERS": str(workers), **env_overrides,
        }  # fmt: skip
    server_env = env.server_env(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), **env_overrides)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            _command(kind, app, port, workers),
            cwd=cwd or env.ROOT,
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, kind, port, process, log_path, metrics_dir, tls=topology, metrics_token=token)
    try:
        _wait_ready(server, ready_path)
        yield server
    except BaseException:
        # The server's own account of a failed run outlives its work directory.
        env.RESULTS_DIR.mkdir(exist_ok=True)
        kept = env.RESULTS_DIR / f"server-{name}.log"
        shutil.copyfile(log_path, kept)
        print(f"   {name} failed; its log: {kept}", flush=True)
        raise
    finally:
        _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def serve_cached(
    name: str, kind: str, app: str, *, paths: list[str], workers: int = 2, cwd: Path | None = None, **env_overrides: str
) -> Iterator[tuple[Server, str]]:
    """A project server at the production TTL, logged in (the session id is yielded with it), and
    every path of `paths` fetched once, one after another: a cached-load run then starts with
    every value cached (a short concurrent warm-up left some of the 200 slow misses inside it)."""
    ttl = str(PRODUCTION_TTL_SECONDS)
    with serve(name, kind, app, workers=workers, cwd=cwd, CACHE_TTL_SECONDS=ttl, **env_overrides) as server:
        cookie = login(server)
        for path in paths:
            conn = server.connection(timeout=60)
            try:
                conn.request("GET", path, headers={"Cookie": f"sessionid={cookie}"})
                response = conn.getresponse()
                response.read()
            finally:
                conn.close()
            if response.status != 200:
                raise RuntimeError(f"priming {path} on {name}: HTTP {response.status}")
        yield server, cookie


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def cpu_seconds(server: Server) -> float:
    """CPU time (user + system) used so far by the server's processes, workers included.

    CPU per request is far steadier than requests per second on a machine others are using too.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(server.process.pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    found = {}
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        found[name.strip()] = rest.split(";", 1)[0]
    return found


def login(server: Server, username: str = env.USERNAME, password: str = env.PASSWORD) -> str:
    """Log in through /accounts/login/ like a browser; the session id to send as a cookie."""
    conn = server.connection(timeout=30)
    conn.request("GET", "/accounts/login/")
    first = conn.getresponse()
    csrf = _cookies(first)["csrftoken"]
    first.read()
    conn.close()
    conn = server.connection(timeout=30)
    body = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": csrf})
    conn.request(
        "POST",
        "/accounts/login/",
        body=body,
        # Over HTTPS Django's CSRF check also wants the page the form came from.
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={csrf}",
            "Referer": f"{server.origin}/accounts/login/",
        },
    )
    answer = conn.getresponse()
    answer.read()
    session = _cookies(answer).get("sessionid")
    if answer.status != 302 or not session:
        raise RuntimeError(f"login on {server.name} failed: HTTP {answer.status}")
    return session


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)")


def metrics(server: Server) -> dict[str, float]:
    """Every sample of /metrics, keyed `name{labels}`, plus `name` = the sum over its labels. The
    request may queue behind the day's dashboard loads (a minute and more with the cache off)."""
    conn = server.connection(timeout=300)
    token = {"Authorization": f"Bearer {server.metrics_token}"} if server.metrics_token else {}
    conn.request("GET", "/metrics", headers=token)
    text = conn.getresponse().read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        samples[name + labels] = value
        if labels:
            samples[name] = samples.get(name, 0.0) + value
    return samples


def delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def dashboard_delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    """Like delta(), without the authorization lookups (query_type="authz") the cache also serves."""
    authz = f'{name}{{query_type="authz"}}'
    return delta(after, before, name) - delta(after, before, authz)
