#!/usr/bin/env python3
"""The production topology in one command (`make serve`): nginx terminates TLS on one port and
sends /ws/ to daphne and everything else to gunicorn's sync workers, serves the static files
itself, and the offline sweep runs beside them.

    .venv/bin/python ops/serve.py

Configured through the environment (README, Configuration). It imposes the production settings
(DJANGO_DEBUG=0, DJANGO_BEHIND_TLS_PROXY=1), defaults CACHE_TTL_SECONDS to 600 and requires
DJANGO_SECRET_KEY and METRICS_TOKEN. Every child shares one PROMETHEUS_MULTIPROC_DIR, so /metrics
(answered by whichever gunicorn worker gets it) sums all of them.

SIGTERM or SIGINT stops the children in order: nginx stops accepting and finishes what it
proxies while daphne closes its sockets and the sweep stops, then gunicorn finishes its requests.
Exit 0 when every child stopped cleanly; a child that exits on its own stops the rest (exit 1).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from django.core.exceptions import ImproperlyConfigured  # noqa: E402 - after the path is set

from ops import tls  # noqa: E402
from ops.children import Child, Supervisor  # noqa: E402

PROJECT_WSGI = "dashboard_project.wsgi:application"
PROJECT_ASGI = "dashboard_project.asgi:application"
NGINX_TEMPLATE = ROOT / "ops" / "nginx" / "nginx.conf.template"
GUNICORN_CONFIG = ROOT / "gunicorn.conf.py"
# What the topology imposes (it IS the production deployment) and what it only defaults.
PRODUCTION = {"DJANGO_DEBUG": "0", "DJANGO_BEHIND_TLS_PROXY": "1"}
PRODUCTION_DEFAULTS = {"CACHE_TTL_SECONDS": "600"}
SWEEP_EVERY_SECONDS = 60


@dataclass(frozen=True)
class Config:
    address: str
    port: int
    http_port: int  # 0: no second port
    tls_cert: Path | None  # None: a self-signed pair in the runtime directory
    tls_key: Path | None
    gunicorn_workers: int
    daphne_processes: int
    runtime_dir: Path
    metrics_dir: Path
    static_root: Path
    host_names: tuple[str, ...]
    wsgi_app: str = PROJECT_WSGI
    asgi_app: str = PROJECT_ASGI
    sweep: bool = True

    @property
    def run_dir(self) -> Path:
        return self.runtime_dir / "run"

    def daphne_socket(self, index: int) -> Path:
        return self.run_dir / f"daphne-{index}.sock"

    @property
    def url(self) -> str:
        host = self.address if self.address not in ("0.0.0.0", "::") else (self.host_names or ("localhost",))[0]
        return f"https://{_bracketed(host)}{'' if self.port == 443 else f':{self.port}'}/"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def load_config() -> Config:
    """Production settings into this process's environment (the children inherit it), then
    Django's settings module read once here: a bad value stops everything before anything starts."""
    os.environ.update(PRODUCTION)
    for name, value in PRODUCTION_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from dashboard_project import env, settings

    if not settings.METRICS_TOKEN:
        raise ImproperlyConfigured("METRICS_TOKEN must be set: /metrics is reachable through the proxy")
    cert, key = env.env_str("SERVE_TLS_CERT", ""), env.env_str("SERVE_TLS_KEY", "")
    if bool(cert) != bool(key):
        raise ImproperlyConfigured("SERVE_TLS_CERT and SERVE_TLS_KEY are given together, or neither")
    for path in filter(None, (cert, key)):
        if not Path(path).is_file():
            raise ImproperlyConfigured(f"TLS file not found: {path}")
    runtime = Path(env.env_str("SERVE_RUNTIME_DIR", str(ROOT / "var" / "serve"))).resolve()
    return Config(
        address=env.env_str("SERVE_ADDRESS", "127.0.0.1"),
        port=env.env_int("SERVE_PORT", 8443, minimum=1),
        http_port=env.env_int("SERVE_HTTP_PORT", 0),
        tls_cert=Path(cert).resolve() if cert else None,
        tls_key=Path(key).resolve() if key else None,
        gunicorn_workers=env.env_int("SERVE_GUNICORN_WORKERS", 2, minimum=1),
        daphne_processes=env.env_int("SERVE_DAPHNE_PROCESSES", 1, minimum=1),
        runtime_dir=runtime,
        metrics_dir=Path(env.env_str("PROMETHEUS_MULTIPROC_DIR", "") or runtime / "prometheus").resolve(),
        static_root=Path(settings.STATIC_ROOT),
        host_names=tuple(tls.certificate_names(settings.ALLOWED_HOSTS)),
    )


def render_nginx(config: Config, *, cert: Path, key: Path) -> str:
    listen = f"{_bracketed(config.address)}:{config.port}"
    redirect = ""
    if config.http_port:
        port = "" if config.port == 443 else f":{config.port}"
        redirect = (
            f"\n    server {{\n        listen {_bracketed(config.address)}:{config.http_port};\n"
            f"        return 301 https://$host{port}$request_uri;\n    }}\n"
        )
    # A master started as root would run its workers as `nobody`, who cannot reach the sockets and
    # files of the invoking user; the workers run as that user, like the rest of the topology.
    user = "user root;" if os.geteuid() == 0 else ""
    values = {
        "runtime_dir": str(config.runtime_dir),
        "run_dir": str(config.run_dir),
        "log_dir": str(config.runtime_dir / "logs"),
        "tmp_dir": str(config.runtime_dir / "tmp"),
        "user_directive": user,
        "listen": listen,
        "tls_cert": str(cert),
        "tls_key": str(key),
        "static_root": str(config.static_root),
        "daphne_servers": "\n".join(
            f"        server unix:{config.daphne_socket(i)};" for i in range(1, config.daphne_processes + 1)
        ),
        "http_redirect_server": redirect,
    }
    text = NGINX_TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("{{ " + name + " }}", value)
    if "{{" in text:
        raise ImproperlyConfigured(f"{NGINX_TEMPLATE} has a value ops/serve.py does not fill")
    return text


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise ImproperlyConfigured("nginx is not installed: bash ops/system_deps.sh (make serve runs it)")
    return found


def children(config: Config, nginx: str) -> tuple[list[Child], Child]:
    """The backends (started first) and nginx (started once their sockets exist)."""
    python = sys.executable
    gunicorn_socket = config.run_dir / "gunicorn.sock"
    gunicorn = [python, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), "--worker-class", "sync"]
    gunicorn += ["--workers", str(config.gunicorn_workers), "--bind", f"unix:{gunicorn_socket}", config.wsgi_app]
    backends = [Child("gunicorn", gunicorn, stop_signal=signal.SIGTERM, stops_last=True, socket=gunicorn_socket)]
    for i in range(1, config.daphne_processes + 1):
        # Pings keep a live socket busy through nginx's proxy_read_timeout and drop dead peers.
        daphne = [python, "-m", "dashboard_project.asgi_server", "-u", str(config.daphne_socket(i)), "--proxy-headers"]
        daphne += ["--ping-interval", "10", "--ping-timeout", "10", config.asgi_app]
        backends.append(Child(f"daphne-{i}", daphne, stop_signal=signal.SIGTERM, socket=config.daphne_socket(i)))
    if config.sweep:
        sweep = [python, str(ROOT / "manage.py"), "sweep_devices", "--every", str(SWEEP_EVERY_SECONDS)]
        backends.append(Child("sweep", sweep, stop_signal=signal.SIGTERM))
    conf = config.runtime_dir / "nginx.conf"
    proxy = Child(
        "nginx",
        [nginx, "-p", str(config.runtime_dir), "-c", str(conf), "-e", "stderr"],
        stop_signal=signal.SIGQUIT,
        pid_file=config.run_dir / "nginx.pid",
    )
    return backends, proxy


@contextmanager
def runtime_lock(runtime_dir: Path):
    runtime_dir.mkdir(parents=True, exist_ok=True)
    with open(runtime_dir / "serve.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ImproperlyConfigured(f"another ops/serve.py runs with {runtime_dir}") from None
        yield


def prepare(config: Config, nginx: str) -> None:
    """Directories, certificate, static files and the nginx config; nothing is started yet."""
    for sub in ("run", "logs", "tmp"):
        (config.runtime_dir / sub).mkdir(parents=True, exist_ok=True)
    for stale in [*config.run_dir.glob("*.sock"), *config.run_dir.glob("*.pid")]:  # left by a run that was killed
        stale.unlink()
    if config.tls_cert and config.tls_key:
        cert, key = config.tls_cert, config.tls_key
    else:
        cert, key = tls.self_signed_pair(config.runtime_dir / "tls", config.host_names)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, check=True)
    # prometheus_client wants the directory empty at start: what is left belongs to dead processes.
    config.metrics_dir.mkdir(parents=True, exist_ok=True)
    for old in config.metrics_dir.glob("*.db"):
        old.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(config.metrics_dir)
    (config.runtime_dir / "nginx.conf").write_text(render_nginx(config, cert=cert, key=key))
    conf = config.runtime_dir / "nginx.conf"
    test = [nginx, "-t", "-q", "-p", str(config.runtime_dir), "-c", str(conf), "-e", "stderr"]
    if subprocess.run(test).returncode != 0:
        raise ImproperlyConfigured(f"nginx refused {conf} (above)")


def run(config: Config) -> int:
    nginx = nginx_binary()
    with runtime_lock(config.runtime_dir):
        prepare(config, nginx)
        backends, proxy = children(config, nginx)
        return Supervisor(backends, proxy, ready_banner=_banner(config)).run(cwd=ROOT)


def _banner(config: Config) -> Callable[[], None]:
    def show() -> None:
        print(
            f"\n  coldchain-dashboard, production topology: {config.url}\n"
            f"  nginx (TLS, static files) -> gunicorn ({config.gunicorn_workers} sync workers),"
            f" /ws/ -> daphne ({config.daphne_processes})"
            f"{f', offline sweep every {SWEEP_EVERY_SECONDS} s' if config.sweep else ''}; stop with Ctrl-C\n",
            flush=True,
        )

    return show


def main() -> int:
    try:
        return run(load_config())
    except ImproperlyConfigured as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
