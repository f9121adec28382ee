"""Acceptance: a real Prometheus, using ops/prometheus/prometheus.yml, scrapes the production
topology (`make serve`: HTTPS through nginx, the token, two gunicorn workers, daphne and the sweep
writing to one PROMETHEUS_MULTIPROC_DIR) and computes the cache hit rate the requests produced."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from stats import queries
from tests.live import free_port
from tests.ops.tools import PROMETHEUS_DIR, grafana_variables_substituted, load_dashboard, query_panels, require_binary
from tests.topology import WAIT_SECONDS, clear_of_a_window_boundary, sign_in, value

pytestmark = pytest.mark.live

START_SECONDS = 60
SCRAPE_WAIT_SECONDS = 60
DASHBOARD_PATHS = ["stats", "units/status", "alerts/count", "devices/online"]
HITS_PER_PATH = 2


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


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def scrape_config(tmp_path: Path, *, app_port: int, token: str, ca_file: Path) -> Path:
    """The repository's prometheus.yml, pointed at this test's topology, token, certificate and a 1 s interval."""
    token_file = tmp_path / "metrics_token"
    token_file.write_text(token + "\n")
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    for old, new in [
        ("/etc/prometheus/coldchain_metrics_token", str(token_file)),
        ("/etc/prometheus/coldchain_ca.pem", str(ca_file)),
        ('["127.0.0.1:8443"]', f'["127.0.0.1:{app_port}"]'),
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


def test_prometheus_scrapes_the_topology_and_computes_the_hit_rate_the_requests_produced(topology, tmp_path):
    prometheus_bin = require_binary("prometheus")
    prom_port = free_port()
    prom_log = tmp_path / "prometheus.log"
    # Everything opened below is closed (Prometheus stopped) when the test ends, passed or not.
    with ExitStack() as opened:
        web = opened.enter_context(topology.client())
        sign_in(web, topology.url)
        # The topology serves the whole session: count from what it has counted so far.
        clear_of_a_window_boundary()  # the stats cached below must not expire at one meanwhile
        before = topology.metrics()
        hits_before = value(before, "dashboard_cache_hit_total")
        misses_before = value(before, "dashboard_cache_miss_total")

        # Known traffic, with the cache flushed before this test. The organization list caches this
        # user's principal (one authz miss); every API request after it reads the principal (a
        # hit) and its own dashboard key: the first read of each path misses, the others hit,
        # whichever gunicorn worker answers. A count that is part of the stats is computed on its
        # miss from the cached stats (read first here): one more hit each.
        org_id = web.get("/api/orgs/").json()["organizations"][0]["id"]
        requests = 0
        for path in DASHBOARD_PATHS:
            for _ in range(1 + HITS_PER_PATH):
                assert web.get(f"/api/orgs/{org_id}/{path}").status_code == 200
                requests += 1
        # Two dashboards stay open (on daphne) through the scrapes, and no other. Each socket's
        # connect reads the principal too (a hit).
        topology.wait_for_metric("dashboard_websocket_connections", 0)
        sockets = 2
        derived = sum(1 for query in queries.QUERIES if query.path in DASHBOARD_PATHS and query.part_of)
        hits = HITS_PER_PATH * len(DASHBOARD_PATHS) + requests + sockets + derived
        misses = len(DASHBOARD_PATHS) + 1
        for _ in range(sockets):
            socket = opened.enter_context(
                connect(
                    f"wss://127.0.0.1:{topology.port}/ws/orgs/{org_id}/",
                    ssl=topology.tls,
                    origin=topology.url,
                    additional_headers={"Cookie": f"sessionid={web.cookies['sessionid']}"},
                    open_timeout=WAIT_SECONDS,
                )
            )
            assert json.loads(socket.recv(timeout=WAIT_SECONDS))["type"] == "hello"
        traffic_done = time.time()

        config = scrape_config(tmp_path, app_port=topology.port, token=topology.token, ca_file=topology.cert)
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
        opened.callback(stop, prom)
        prometheus = opened.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{prom_port}", timeout=10))
        ready = lambda: prometheus.get("/-/ready").status_code == 200  # noqa: E731
        wait_for(ready, START_SECONDS, "prometheus ready", prom, prom_log)

        # Wait for a successful scrape (over TLS, verified with the topology's certificate, with
        # the token) taken after the traffic (timestamp() is the sample's time).
        def scraped_after_traffic() -> bool:
            up = query(prometheus, 'up{job="coldchain-dashboard"}')
            when = scalar(prometheus, 'timestamp(up{job="coldchain-dashboard"})')
            return bool(up) and up[0]["value"][1] == "1" and when is not None and when > traffic_done

        wait_for(scraped_after_traffic, SCRAPE_WAIT_SECONDS, "a scrape after the traffic", prom, prom_log)

        # The hit-rate alert (ops/prometheus/alerts.yml) uses rate(...[5m]), which needs two
        # samples in the window that differ: here all traffic happened before the first scrape, so
        # the counters' totals are compared with what the topology had counted before it.
        assert scalar(prometheus, "sum(dashboard_cache_hit_total)") == hits_before + hits
        assert scalar(prometheus, "sum(dashboard_cache_miss_total)") == misses_before + misses
        assert {r["metric"]["query_type"] for r in query(prometheus, "dashboard_cache_miss_total")} >= {
            "stats",
            "units:status",
            "alerts:count",
            "devices:online",
            "authz",
        }
        # The processes' values arrive summed: no series carries a process id.
        assert query(prometheus, '{job="coldchain-dashboard", pid!=""}') == []
        # Every Grafana query evaluates on these series; the gauge panels show the host's one
        # value (two sockets on daphne; the breaker closed in every process).
        panels = {panel["title"]: panel for panel in query_panels(load_dashboard())}
        for panel in panels.values():
            for target in panel["targets"]:
                query(prometheus, grafana_variables_substituted(target["expr"]))
        for title, expected in [("WebSocket connections", sockets), ("Redis circuit breaker open", 0)]:
            panel = next(panel for name, panel in panels.items() if name.startswith(title))
            expr = grafana_variables_substituted(panel["targets"][0]["expr"])
            assert [float(r["value"][1]) for r in query(prometheus, expr)] == [expected], (title, expr)
        # The rules file from the scrape config was loaded too.
        rules = prometheus.get("/api/v1/rules").raise_for_status().json()["data"]["groups"]
        assert {rule["name"] for group in rules for rule in group["rules"]} >= {"DashboardCacheHitRateLow"}
