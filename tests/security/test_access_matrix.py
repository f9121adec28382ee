"""Who may reach what: every URL x every role -> the expected status (or WebSocket close code).

Cells: an HTTP status; "login" = 302 to a login page; "302" = a redirect elsewhere;
"hello" = the WebSocket is accepted and greets; 44xx = the WebSocket is closed with that code.
Members see only their own organization (non-members get 404, not 403: existence is not revealed),
even staff and superusers; the admin and its cache inspector follow Django's staff/permission model.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from channels.testing import WebsocketCommunicator
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client, override_settings

from stats.models import Alert, AlertStatus
from tests import factories
from tests.security.conftest import ROLES, World

L = "login"
MEMBER_GET = (401, 404, 200, 200, 404, 404, 404, 404)
ALERT_POST = (401, 404, 403, 200, 404, 404, 404, 404)
# fmt: off
MATRIX: dict[str, tuple] = {
    # request                                             anonymous outsider viewer manager staff_bare staff_view staff_change superuser  # noqa: E501
    "GET /":                                              (L,    302,  302,  302,  200,  200,  200,  200),
    "GET /orgs/{org}/":                                   (L,    404,  200,  200,  404,  404,  404,  404),
    "GET /api/orgs/":                                     (401,  200,  200,  200,  200,  200,  200,  200),
    "GET /api/orgs/{org}/units":                          MEMBER_GET,
    "GET /api/orgs/{org}/stats":                          MEMBER_GET,
    "GET /api/orgs/{org}/stats?refresh=1":                MEMBER_GET,
    "GET /api/orgs/{org}/units/status":                   MEMBER_GET,
    "GET /api/orgs/{org}/alerts":                         MEMBER_GET,
    "GET /api/orgs/{org}/alerts/count":                   MEMBER_GET,
    "GET /api/orgs/{org}/alerts/count?unit={unit}":       MEMBER_GET,
    "GET /api/orgs/{org}/units/{unit}/trends":            MEMBER_GET,
    "GET /api/orgs/{org}/devices/online":                 MEMBER_GET,
    "POST /api/orgs/{org}/alerts/{alert}/acknowledge":    ALERT_POST,
    "POST /api/orgs/{org}/alerts/{alert}/resolve":        ALERT_POST,
    # CSRF runs before the view: without the token nobody gets in, not even a manager.
    "POST /api/orgs/{org}/alerts/{alert}/acknowledge no-csrf": (403, 403, 403, 403, 403, 403, 403, 403),
    # Another organization's alert through our organization's URL: 404 for the manager.
    "POST /api/orgs/{org}/alerts/{other_alert}/acknowledge": (401, 404, 403, 404, 404, 404, 404, 404),
    "WS /ws/orgs/{org}/":                                 (4401, 4403, "hello", "hello", 4403, 4403, 4403, 4403),
    "GET /admin/":                                        (L,    L,    L,    L,    200,  200,  200,  200),
    "GET /admin/stats/organization/cache/":               (L,    L,    L,    L,    403,  200,  200,  200),
    "POST /admin/stats/organization/cache/ delete_key":   (L,    L,    L,    L,    403,  403,  302,  302),
    "POST /admin/stats/organization/cache/ invalidate_org": (L,  L,    L,    L,    403,  403,  302,  302),
    "GET /metrics":                                       (200,  200,  200,  200,  200,  200,  200,  200),
    "GET /metrics token-set":                             (401,  401,  401,  401,  401,  401,  401,  401),
    "GET /metrics token-set bearer":                      (200,  200,  200,  200,  200,  200,  200,  200),
    "GET /metrics token-set wrong-bearer":                (401,  401,  401,  401,  401,  401,  401,  401),
    "GET /health":                                        (200,  200,  200,  200,  200,  200,  200,  200),
}
# fmt: on
METRICS_TOKEN = "s3cret-metrics-token"


def cells(ws: bool) -> list:
    return [
        pytest.param(request, role, expected[i], id=f"{request} | {role}")
        for request, expected in MATRIX.items()
        if request.startswith("WS ") == ws
        for i, role in enumerate(ROLES)
    ]


def test_the_matrix_names_every_role_for_every_request():
    assert all(len(expected) == len(ROLES) for expected in MATRIX.values())


@dataclass
class Outcome:
    status: int
    location: str


def _csrf_client(world: World, role: str) -> tuple[Client, str]:
    client = world.client(role, enforce_csrf_checks=True)
    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    return client, token


def perform(world: World, request: str, role: str) -> Outcome:
    method, url, *flags = request.split(" ")
    alert = factories.alert(world.unit)
    other_alert = factories.alert(world.other_unit)
    url = url.format(org=world.org.id, unit=world.unit.id, alert=alert.id, other_alert=other_alert.id)
    client, token = _csrf_client(world, role)
    if method == "GET":
        headers = {}
        if "bearer" in flags:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {METRICS_TOKEN}"
        if "wrong-bearer" in flags:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {METRICS_TOKEN}x"
        with override_settings(METRICS_TOKEN=METRICS_TOKEN if "token-set" in flags else ""):
            response = client.get(url, **headers)
    elif url.startswith("/admin/"):
        data = {"csrfmiddlewaretoken": token, "action": flags[0], "key": _seed_key(world), "org_id": str(world.org.id)}
        response = client.post(url, data)
    else:
        headers = {} if "no-csrf" in flags else {"HTTP_X_CSRFTOKEN": token}
        response = client.post(url, **headers)
        _check_alert_effect(response.status_code, alert, other_alert, url)
    if request.startswith("POST /admin/"):
        _check_cache_effect(world, response.status_code, response.get("Location", ""))
    return Outcome(response.status_code, response.get("Location", ""))


def _seed_key(world: World) -> str:
    assert world.client("manager").get(f"/api/orgs/{world.org.id}/stats").status_code == 200
    return f"dashboard:stats:org:{world.org.id}"


def _check_cache_effect(world: World, status: int, location: str) -> None:
    from stats import cache

    changed = status == 302 and "login" not in location
    assert (cache.get(f"dashboard:stats:org:{world.org.id}") is None) == changed


def _check_alert_effect(status: int, alert: Alert, other_alert: Alert, url: str) -> None:
    alert.refresh_from_db()
    other_alert.refresh_from_db()
    assert other_alert.status == AlertStatus.ACTIVE  # never changed through another organization's URL
    assert (alert.status != AlertStatus.ACTIVE) == (status == 200 and str(alert.id) in url)


@pytest.mark.parametrize(("request_", "role", "expected"), cells(ws=False))
def test_http_access(world, request_, role, expected):
    outcome = perform(world, request_, role)
    if expected == L:
        assert (outcome.status, "login" in outcome.location) == (302, True), outcome
    elif expected == 302:
        assert outcome.status == 302 and "login" not in outcome.location, outcome
    else:
        assert outcome.status == expected, outcome


@pytest.mark.parametrize(("request_", "role", "expected"), cells(ws=True))
async def test_websocket_access(live_world, request_, role, expected):
    from asgiref.sync import sync_to_async

    from dashboard_project.asgi import application

    headers = [(b"origin", b"http://127.0.0.1")]
    if role != "anonymous":
        client = await sync_to_async(live_world.client)(role)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    communicator = WebsocketCommunicator(application, f"/ws/orgs/{live_world.org.id}/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected  # accepted first, so the close code reaches the browser
    message = await communicator.receive_output(timeout=5)
    if expected == "hello":
        assert message["type"] == "websocket.send", message
        assert '"hello"' in message["text"]
    else:
        assert message == {"type": "websocket.close", "code": expected}
    await communicator.disconnect()


async def test_a_websocket_from_a_foreign_origin_is_refused_before_auth(live_world):
    from asgiref.sync import sync_to_async

    from dashboard_project.asgi import application

    client = await sync_to_async(live_world.client)("manager")
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"origin", b"http://evil.example"), (b"cookie", cookie)]
    communicator = WebsocketCommunicator(application, f"/ws/orgs/{live_world.org.id}/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert not connected
