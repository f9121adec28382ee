"""The production topology (`make serve`, ops/serve.py) from the outside: one HTTPS port, plain
HTTP redirected, static files from nginx, secure cookies and the cached dashboard's fast path
behind the proxy, /metrics summing every process, the WebSocket origin check, and every process
stopped together and cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ops.children import process_tree
from tests import topology as serve
from tests.services import port_open
from tests.topology import WAIT_SECONDS, sign_in, value

pytestmark = pytest.mark.live

STATIC_ROOT = serve.REPO / "var" / "static"


@pytest.fixture
def signed_in(topology) -> Iterator[tuple[httpx.Client, str]]:
    """A client signed in as demo through the proxy, and demo's organization."""
    with topology.client() as client:
        sign_in(client, topology.url)
        orgs = client.get("/api/orgs/").json()["organizations"]
        yield client, orgs[0]["id"]


def test_plain_http_on_the_tls_port_and_on_the_http_port_is_redirected_to_https(topology):
    for port in (topology.port, topology.http_port):
        response = httpx.get(f"http://127.0.0.1:{port}/api/orgs/?page=2", follow_redirects=False, timeout=WAIT_SECONDS)

        assert response.status_code == 301
        assert response.headers["location"] == f"https://127.0.0.1:{topology.port}/api/orgs/?page=2"


def test_static_files_are_served_by_nginx_from_the_collectstatic_output(topology):
    with topology.client() as client:
        response = client.get("/static/stats/dashboard.js")

    # The app can serve its own files too (stats.pages.static_file), through its middleware; these
    # are nginx's answer: its cache header and ETag, none of Django's security headers.
    assert response.status_code == 200
    assert response.content == (STATIC_ROOT / "stats" / "dashboard.js").read_bytes()
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"]
    assert "x-frame-options" not in response.headers  # Django's middleware adds it to all it answers


def test_signing_in_sets_secure_cookies_and_cached_reads_take_the_fast_path_behind_the_proxy(topology):
    with topology.client() as client:
        login = sign_in(client, topology.url)
        cookies = {c.split("=", 1)[0]: c for c in login.headers.get_list("set-cookie")}
        assert "; Secure" in cookies["sessionid"] and "; Secure" in cookies["csrftoken"]
        org_id = client.get("/api/orgs/").json()["organizations"][0]["id"]
        before = topology.metrics()

        miss = client.get(f"/api/orgs/{org_id}/stats")
        hit = client.get(f"/api/orgs/{org_id}/stats")
        after = topology.metrics()

    assert (miss.status_code, hit.status_code) == (200, 200)
    assert hit.content == miss.content
    assert hit.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
    # The lane checks for the HTTPS redirect as SecurityMiddleware does: it serves only because
    # nginx says the request came over TLS (X-Forwarded-Proto).
    for outcome in ("passed", "served"):
        counted = value(after, "dashboard_fast_path_requests_total", outcome=outcome)
        assert counted - value(before, "dashboard_fast_path_requests_total", outcome=outcome) == 1, outcome


def test_metrics_sum_every_process_and_the_websocket_takes_the_pages_https_origin(topology, signed_in):
    client, org_id = signed_in
    ws_url = f"wss://127.0.0.1:{topology.port}/ws/orgs/{org_id}/"
    cookie = {"Cookie": f"sessionid={client.cookies['sessionid']}"}
    assert client.get("/metrics").status_code == 401  # the token is required through the proxy

    with pytest.raises(InvalidStatus) as refused:
        connect(
            ws_url,
            ssl=topology.tls,
            origin="https://elsewhere.example",
            additional_headers=cookie,
            open_timeout=WAIT_SECONDS,
        )
    assert refused.value.response.status_code == 403

    topology.wait_for_metric("dashboard_websocket_connections", 0)  # an earlier test's sockets are gone
    with connect(
        ws_url, ssl=topology.tls, origin=topology.url, additional_headers=cookie, open_timeout=WAIT_SECONDS
    ) as socket:
        assert json.loads(socket.recv(timeout=WAIT_SECONDS))["type"] == "hello"
        # daphne holds the socket; a gunicorn worker answers /metrics.
        exposition = topology.metrics()
        assert value(exposition, "dashboard_websocket_connections") == 1
        assert "pid=" not in exposition  # one series per metric, not one per process

    requests = "django_http_requests_total_by_view_transport_method_total"
    before = value(topology.metrics(), requests, view="health")
    with ThreadPoolExecutor(8) as pool:  # concurrent, so both gunicorn workers answer some
        statuses = list(
            pool.map(
                lambda _: httpx.get(f"{topology.url}/health", verify=topology.tls, timeout=WAIT_SECONDS), range(40)
            )
        )
    assert {response.status_code for response in statuses} == {200}
    assert value(topology.metrics(), requests, view="health") - before == 40

    topology.wait_for_metric("dashboard_websocket_connections", 0)  # the closed socket leaves the count


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["SIGTERM from a service manager", "SIGINT to the group, as Ctrl-C in a terminal"],
)
def test_every_process_stops_together_and_cleanly_on_a_signal(signum, to_group, serve_database, tmp_path):
    running = serve.start(tmp_path, serve_database)  # no certificate given: it makes its own
    try:
        assert "SELF-SIGNED TLS certificate" in running.log.read_text()
        with running.client() as client:  # verified with that certificate: its names fit
            sign_in(client, running.url)
            org_id = client.get("/api/orgs/").json()["organizations"][0]["id"]
            cookie = {"Cookie": f"sessionid={client.cookies['sessionid']}"}
        processes = process_tree(running.process.pid)
        # serve, nginx (master, workers), gunicorn (master, 2 workers), daphne, the sweep
        assert len(processes) >= 1 + 2 + 3 + 1 + 1, processes
        ws_url = f"wss://127.0.0.1:{running.port}/ws/orgs/{org_id}/"
        with connect(
            ws_url, ssl=running.tls, origin=running.url, additional_headers=cookie, open_timeout=WAIT_SECONDS
        ) as socket:
            assert json.loads(socket.recv(timeout=WAIT_SECONDS))["type"] == "hello"
            status = running.stop(signum, to_group=to_group)
            with pytest.raises(ConnectionClosed):  # an open dashboard is let go, not left hanging
                socket.recv(timeout=WAIT_SECONDS)
    finally:
        running.stop()

    log = running.log.read_text()
    assert status == 0, log[-3000:]
    assert f"signal {signal.Signals(signum).name}; stopping" in log
    assert "Traceback" not in log  # each child was stopped the way it is meant to be, not interrupted
    assert [pid for pid in processes if _alive(pid)] == []
    assert not port_open("127.0.0.1", running.port)
