"""The dashboard in Chromium through the production topology's one HTTPS port (`make serve`):
sign in, live over wss://.../ws/ (nginx -> daphne), and an uplink posted to the webhook through
the proxy (nginx -> gunicorn) changes it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import DEMO1_FRIDGE, LIVE_TIMEOUT_MS, api, expect_page_matches_api, login, post_uplink

pytestmark = pytest.mark.live


def test_the_dashboard_is_live_over_wss_and_follows_an_uplink_posted_through_the_proxy(browser, topology):
    secret = topology.manage("webhook_secret", "demo-1").strip()
    # The certificate is one the browser was never told about: accepted for this context only.
    context = browser.new_context(
        base_url=topology.url, ignore_https_errors=True, viewport={"width": 1280, "height": 900}
    )
    try:
        page = context.new_page()
        sockets: list[str] = []
        page.on("websocket", lambda socket: sockets.append(socket.url))
        login(page, "demo", "demo")
        expect(page).to_have_url(re.compile(rf"^{re.escape(topology.url)}/orgs/[0-9a-f-]{{36}}/$"))
        expect(page.get_by_test_id("ws-status")).to_have_text("live", timeout=10_000)
        org_id = page.url.rstrip("/").rsplit("/", 1)[1]
        assert sockets == [f"wss://127.0.0.1:{topology.port}/ws/orgs/{org_id}/"]

        before = expect_page_matches_api(page, org_id, timeout=10_000)
        fridge = next(u for u in api(page, f"/api/orgs/{org_id}/units")["units"] if u["name"] == "Fridge 1")
        assert fridge["status"] in ("ok", "restoring"), "the seed leaves Fridge 1 in range"
        response = post_uplink(
            topology, dev_eui=DEMO1_FRIDGE, temperature=fridge["tempMax"] + 7, secret=secret, verify=topology.tls
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "stored"

        warning = before["unitCounts"]["warning"] + 1
        expect(page.locator('[data-testid="tile-warning"] .n')).to_have_text(str(warning), timeout=LIVE_TIMEOUT_MS)
        card = page.locator('[data-testid="unit-card"]').filter(has_text="Fridge 1")
        expect(card.get_by_test_id("unit-status")).to_have_text("warning · too hot", timeout=LIVE_TIMEOUT_MS)
        expect_page_matches_api(page, org_id)
        assert len(sockets) == 1  # followed over the one socket, no reconnect
    finally:
        context.close()
