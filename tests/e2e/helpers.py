"""What the browser tests do again and again: sign in, post an uplink, compare page and API."""

from __future__ import annotations

import itertools
import ssl
from datetime import UTC, datetime

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.server import Server
from tests.topology import Topology

# The seed's devices: organization index 0 (demo-1), units 0..2 (Fridge 1, Freezer 2, Cold Room 3).
DEMO1_FRIDGE = "70B3D57E00000000"
DEMO1_COLD_ROOM = "70B3D57E00000002"
LIVE_TIMEOUT_MS = 2000  # "the page follows within 2 s"
_uplink_seq = itertools.count(1)


def login(page: Page, username: str, password: str, *, path: str = "/") -> None:
    """Sign in through the login form (the way a person does)."""
    page.goto(path)
    expect(page).to_have_url(f"{page.url.split('/accounts/')[0]}/accounts/login/?next={path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def admin_login(page: Page, username: str, password: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()


def api(page: Page, path: str) -> dict:
    """GET the JSON API with the page's session cookie."""
    response = page.request.get(path)
    assert response.ok, f"{path}: {response.status}"
    return response.json()


def expect_page_matches_api(page: Page, org_id: str, *, timeout: float = LIVE_TIMEOUT_MS) -> dict:
    """Every number on the dashboard equals what the JSON API says now."""
    stats = api(page, f"/api/orgs/{org_id}/stats")
    alerts = api(page, f"/api/orgs/{org_id}/alerts")["alerts"]
    units = stats["unitCounts"]
    for testid, value in [
        ("tile-normal", units["normal"]),
        ("tile-warning", units["warning"]),
        ("tile-critical", units["critical"]),
        ("tile-offline", units["offline"]),
        ("tile-too-hot", units["too_hot"]),
        ("tile-too-cold", units["too_cold"]),
    ]:
        expect(page.locator(f'[data-testid="{testid}"] .n')).to_have_text(str(value), timeout=timeout)
    for testid, value in [
        ("alerts-unresolved", stats["alertCounts"]["unresolved"]),
        ("alerts-acknowledged", stats["alertCounts"]["acknowledged"]),
        ("devices-online", stats["deviceCounts"]["online"]),
        ("devices-offline", stats["deviceCounts"]["offline"]),
    ]:
        expect(page.get_by_test_id(testid)).to_have_text(str(value), timeout=timeout)
    compliance = stats["compliancePercentage"]
    expect(page.get_by_test_id("compliance")).to_have_text(
        "–" if compliance is None else f"{compliance:.1f} %", timeout=timeout
    )
    expect(page.get_by_test_id("alert-row")).to_have_count(len(alerts), timeout=timeout)
    return stats


def post_uplink(
    server: Server | Topology,
    *,
    dev_eui: str,
    secret: str,
    temperature: float | None = None,
    payload: dict | None = None,
    version_ids: dict | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Response:
    """A TTN uplink: the generic `temperature`, or `payload` as the device's decoder wrote it."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    body = {
        "end_device_ids": {"dev_eui": dev_eui},
        "received_at": now,
        "uplink_message": {
            "f_cnt": 10_000 + next(_uplink_seq),
            "decoded_payload": payload or {"temperature": temperature, "battery_v": 3.6, "humidity": 50},
            "rx_metadata": [{"rssi": -80}],
            "received_at": now,
        },
    }
    if version_ids:
        body["uplink_message"]["version_ids"] = version_ids
    return httpx.post(
        f"{server.url}/api/webhooks/ttn", json=body, headers={"X-Webhook-Secret": secret}, timeout=10, verify=verify
    )
