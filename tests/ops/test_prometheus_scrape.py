"""Acceptance: a real Prometheus, using ops/prometheus/prometheus.yml, scrapes a real daphne
serving the app and computes the cache hit rate the requests produced."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.live import free_port, start_daphne
from tests.ops.tools import PROMETHEUS_DIR, REPO, require_binary

pytestmark = pytest.mark.live

START_SECONDS = 60
SCRAPE_WAIT_SECONDS = 60
USERNAME, PASSWORD = "ops-watcher", "ops-watcher-pw"
DASHBOARD_PATHS = ["stats", "units/status", "alerts/count", "devices/online"]
HITS_PER_PATH = 2

SEED = f"""
import json
from stats.models import Role
from tests import factories
org = factories.organization("Ops Org")
for _ in range(2):
    factories.device(factories.unit(org))
person = factories.user({USERNAME!r}, password={PASSWORD!r})
from stats.models import Membership
Membership.objects.create(user=person, organization=org, role=Role.VIEWER)
print(json.dumps({{"org": str(org.id)}}))
"""


def wait_for(condition: Callable[[], bool], seconds: float, what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what}: process exited with {process.returncode}\n{log.read_text()[-3000:]}")
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {seconds:.0f}s\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def scrape_config(tmp_path: Path, *, app_port: int, token: str) -> Path:
    """The repository's prometheus.yml, pointed at this test's app, token file and 1 s interval."""
    token_file = tmp_path / "metrics_token"
    token_file.write_text(token + "\n")
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    for old, new in [
        ("/etc/prometheus/coldchain_metrics_token", str(token_file)),
        ('["127.0.0.1:8000"]', f'["127.0.0.1:{app_port}"]'),
        ("scrape_interval: 15s", "scrape_interval: 1s"),
        ("  - alerts.yml", f"  - {PROMETHEUS_DIR / 'alerts.yml'}"),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    return config


def query(prometheus: httpx.Client, promql: str) -> list[dict]:
    body = prometheus.get("/api/v1/query", params={"query": promql}).raise_for_status().json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def scalar(prometheus: httpx.Client, promql: str) -> float | None:
    result = query(prometheus, promql)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_the_app_and_computes_the_hit_rate_the_requests_produced(tmp_path):
    prometheus_bin = require_binary("prometheus")
    token = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.sqlite3'}",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "METRICS_TOKEN": token,
    }
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput"], env=env, cwd=REPO, check=True, capture_output=True, timeout=300)
    seeded = subprocess.run(
        [*manage, "shell", "-c", SEED], env=env, cwd=REPO, check=True, capture_output=True, text=True, timeout=120
    )
    org_id = json.loads(seeded.stdout.strip().splitlines()[-1])["org"]

    app_port, prom_port = free_port(), free_port()
    prom_log = tmp_path / "prometheus.log"
    app = prom = None
    clients: list[httpx.Client] = []
    try:
        app = start_daphne(
            tmp_path, port=app_port, extra_env={"DATABASE_URL": env["DATABASE_URL"], "METRICS_TOKEN": token}
        )
        web = httpx.Client(base_url=f"http://127.0.0.1:{app_port}", timeout=10)
        clients.append(web)
        wait_for(lambda: web.get("/health").status_code in {200, 503}, START_SECONDS, "daphne up", app.process, app.log)
        assert web.get("/metrics").status_code == 401  # the token is required, so the scrape must send it

        # Log in like a browser: the login form sets the CSRF cookie, the POST must carry it.
        web.get("/accounts/login/").raise_for_status()
        login = web.post(
            "/accounts/login/",
            data={
                "username": USERNAME,
                "password": PASSWORD,
                "csrfmiddlewaretoken": web.cookies["csrftoken"],
            },
        )
        assert login.status_code == 302, login.text[:500]

        # Known traffic. The organization list caches this user's principal (one authz miss);
        # every API request after it reads the principal (a hit) and its own dashboard key:
        # the first read of each path misses, the following ones hit.
        assert web.get("/api/orgs/").status_code == 200
        requests = 0
        for path in DASHBOARD_PATHS:
            for _ in range(1 + HITS_PER_PATH):
                assert web.get(f"/api/orgs/{org_id}/{path}").status_code == 200
                requests += 1
        hits = HITS_PER_PATH * len(DASHBOARD_PATHS) + requests
        misses = len(DASHBOARD_PATHS) + 1
        traffic_done = time.time()

        config = scrape_config(tmp_path, app_port=app_port, token=token)
        prom = subprocess.Popen(
            [
                prometheus_bin,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            cwd=tmp_path,
            stdout=prom_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        prometheus = httpx.Client(base_url=f"http://127.0.0.1:{prom_port}", timeout=10)
        clients.append(prometheus)
        ready = lambda: prometheus.get("/-/ready").status_code == 200  # noqa: E731
        wait_for(ready, START_SECONDS, "prometheus ready", prom, prom_log)

        # Wait for a successful scrape taken after the traffic (timestamp() is the sample's time).
        def scraped_after_traffic() -> bool:
            up = query(prometheus, 'up{job="coldchain-dashboard"}')
            when = scalar(prometheus, 'timestamp(up{job="coldchain-dashboard"})')
            return bool(up) and up[0]["value"][1] == "1" and when is not None and when > traffic_done

        wait_for(scraped_after_traffic, SCRAPE_WAIT_SECONDS, "a scrape after the traffic", prom, prom_log)

        # The card's alert uses rate(...[5m]), which needs two samples in the window that differ:
        # here all traffic happened before the first scrape, so every sample holds the final
        # counts and rate() is 0/0. Since this app process started with the counters at zero, the
        # plain ratio of the counters is exactly the hit rate of the traffic above.
        ratio = scalar(
            prometheus,
            "sum(dashboard_cache_hit_total) / (sum(dashboard_cache_hit_total) + sum(dashboard_cache_miss_total))",
        )
        assert scalar(prometheus, "sum(dashboard_cache_hit_total)") == hits
        assert scalar(prometheus, "sum(dashboard_cache_miss_total)") == misses
        assert ratio == pytest.approx(hits / (hits + misses))
        assert {r["metric"]["query_type"] for r in query(prometheus, "dashboard_cache_miss_total")} == {
            "stats",
            "units:status",
            "alerts:count",
            "devices:online",
            "authz",
        }
        # The rules file from the scrape config was loaded too.
        rules = prometheus.get("/api/v1/rules").raise_for_status().json()["data"]["groups"]
        assert {rule["name"] for group in rules for rule in group["rules"]} >= {"DashboardCacheHitRateLow"}
    finally:
        for client in clients:
            client.close()
        stop(prom)
        if app is not None:
            app.stop()
