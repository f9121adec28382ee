"""The dashboard in Chromium: same numbers as the API, live updates, alert buttons, reconnects."""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from channels.layers import get_channel_layer
from playwright.sync_api import Page, expect

from realtime.broadcast import group_name
from tests.e2e.helpers import (
    DEMO1_COLD_ROOM,
    DEMO1_FRIDGE,
    LIVE_TIMEOUT_MS,
    admin_login,
    api,
    expect_page_matches_api,
    login,
    post_uplink,
)
from tests.e2e.server import Server

pytestmark = pytest.mark.live

# Reconnecting waits up to the 5 s backoff cap, then resyncs.
RECONNECT_TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def secret(server: Server) -> str:
    return server.manage("webhook_secret", "demo-1").strip()


def open_dashboard(page: Page, org_ids: dict[str, str]) -> str:
    org_id = org_ids["demo-1"]
    login(page, "demo", "demo")
    # demo belongs to one organization only, so the picker sends it straight to the dashboard.
    expect(page).to_have_url(f"{page.url.split('/orgs/')[0]}/orgs/{org_id}/")
    expect(page.get_by_test_id("ws-status")).to_have_text("live", timeout=10_000)
    return org_id


def alert_row_of(page: Page, unit_name: str):
    return page.get_by_test_id("alert-row").filter(has_text=unit_name)


def test_the_dashboard_shows_the_api_numbers_and_follows_uplinks_and_alert_actions(page, org_ids, server, secret):
    org_id = open_dashboard(page, org_ids)
    before = expect_page_matches_api(page, org_id, timeout=10_000)
    expect(page.get_by_test_id("unit-card")).to_have_count(before["unitCounts"]["total"])
    expect(page.locator('[data-testid="chart-line"]')).to_have_count(before["unitCounts"]["total"])
    page.screenshot(path="/tmp/dashboard.png", full_page=True)
    fridge = next(u for u in api(page, f"/api/orgs/{org_id}/units")["units"] if u["name"] == "Fridge 1")
    assert fridge["status"] in ("ok", "restoring"), "the seed leaves Fridge 1 in range"

    # An out-of-range uplink: the page follows without a reload.
    response = post_uplink(server, dev_eui=DEMO1_FRIDGE, temperature=fridge["tempMax"] + 7, secret=secret)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "stored"
    warning = before["unitCounts"]["warning"] + 1
    unresolved = before["alertCounts"]["unresolved"] + 1
    expect(page.locator('[data-testid="tile-warning"] .n')).to_have_text(str(warning), timeout=LIVE_TIMEOUT_MS)
    expect(page.locator('[data-testid="tile-too-hot"] .n')).to_have_text(
        str(before["unitCounts"]["too_hot"] + 1), timeout=LIVE_TIMEOUT_MS
    )
    expect(page.get_by_test_id("alerts-unresolved")).to_have_text(str(unresolved), timeout=LIVE_TIMEOUT_MS)
    expect(alert_row_of(page, "Fridge 1")).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
    card = page.locator('[data-testid="unit-card"]').filter(has_text="Fridge 1")
    expect(card.get_by_test_id("unit-status")).to_have_text("warning · too hot", timeout=LIVE_TIMEOUT_MS)
    expect_page_matches_api(page, org_id)

    # Acknowledge, then resolve, with the buttons: counts follow.
    acknowledged = before["alertCounts"]["acknowledged"]
    alert_row_of(page, "Fridge 1").get_by_test_id("ack-button").click()
    expect(alert_row_of(page, "Fridge 1").get_by_test_id("alert-status")).to_have_text(
        "acknowledged", timeout=LIVE_TIMEOUT_MS
    )
    expect(page.get_by_test_id("alerts-acknowledged")).to_have_text(str(acknowledged + 1), timeout=LIVE_TIMEOUT_MS)
    expect(alert_row_of(page, "Fridge 1").get_by_test_id("ack-button")).to_have_count(0)

    alert_row_of(page, "Fridge 1").get_by_test_id("resolve-button").click()
    expect(alert_row_of(page, "Fridge 1")).to_have_count(0, timeout=LIVE_TIMEOUT_MS)
    expect(page.get_by_test_id("alerts-unresolved")).to_have_text(str(unresolved - 1), timeout=LIVE_TIMEOUT_MS)
    expect(page.get_by_test_id("alerts-acknowledged")).to_have_text(str(acknowledged), timeout=LIVE_TIMEOUT_MS)
    expect_page_matches_api(page, org_id)


def chart_points(page: Page, unit_id: str) -> list[dict]:
    """The trend points the unit's chart draws (dashboard.js keeps them on the chart's box)."""
    chart = page.locator(f'[data-unit-id="{unit_id}"] [data-testid="unit-chart"]')
    return json.loads(chart.get_attribute("data-trend"))


def test_a_reading_paints_its_card_its_trend_and_the_compliance_from_the_event_without_a_request(
    page, org_ids, server, secret
):
    """A reading without a state change: the card's temperature, the trend's bucket and the
    stats' compliance come from the event itself (the server updated the cached values in place
    and sent what changed); the page asks for nothing, and then shows what the API serves."""
    org_id = open_dashboard(page, org_ids)
    expect_page_matches_api(page, org_id, timeout=10_000)
    room = next(u for u in api(page, f"/api/orgs/{org_id}/units")["units"] if u["name"] == "Cold Room 3")
    trend_path = f"/api/orgs/{org_id}/units/{room['id']}/trends"
    expect(page.locator(f'[data-unit-id="{room["id"]}"] [data-testid="chart-line"]')).to_have_count(1)
    temperature = round((room["tempMin"] + room["tempMax"]) / 2 + 0.3, 1)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url.split("?")[0]))

    response = post_uplink(server, dev_eui=DEMO1_COLD_ROOM, temperature=temperature, secret=secret)
    assert response.status_code == 200, response.text
    assert response.json()["events"] == ["reading"]
    card = page.locator(f'[data-unit-id="{room["id"]}"]')
    expect(card.get_by_test_id("unit-temp")).to_have_text(f"{temperature:.1f} °C", timeout=LIVE_TIMEOUT_MS)
    stats = expect_page_matches_api(page, org_id)
    expect(page.get_by_test_id("last-updated")).to_have_attribute("data-value", stats["lastUpdated"])
    assert chart_points(page, room["id"]) == api(page, trend_path)["points"]
    # Any request the event caused was made in the pass that painted the card, before the checks.
    assert [url for url in requested if "/api/" in url] == [], requested


def test_a_patch_out_of_line_makes_the_page_fetch_and_one_painted_meanwhile_is_painted_over_the_answer(
    page, org_ids, server
):
    """The page paints a patch only when it follows the last one it painted on that answer (its
    "after" is that one's "at": the cached key's generation). One that does not (an event missed,
    or overtaken by a later one from another ingest worker) makes the page fetch the answer; a
    patch painted while the fetch is on its way is painted again over its answer. Events sent
    straight to the organization's group, as the server sends them."""
    org_id = open_dashboard(page, org_ids)
    expect_page_matches_api(page, org_id, timeout=10_000)
    room = next(u for u in api(page, f"/api/orgs/{org_id}/units")["units"] if u["name"] == "Cold Room 3")
    trend_path = f"/api/orgs/{org_id}/units/{room['id']}/trends"
    chart = page.locator(f'[data-unit-id="{room["id"]}"] [data-testid="unit-chart"]')
    expect(chart.get_by_test_id("chart-line")).to_have_count(1)
    served = api(page, trend_path)["points"]
    first, last = served[0]["timestamp"], served[-1]["timestamp"]
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url.split("?")[0]))

    def point(timestamp: str, value: float) -> dict:
        return {"timestamp": timestamp, "temperature": value, "min": value, "max": value, "alarmState": "too_hot"}

    def reading(after: int, timestamp: str, value: float) -> dict:
        patch = {"after": after, "at": after + 1, "point": point(timestamp, value), "windowStart": first}
        data = {"unitId": room["id"], "temperature": value, "recordedAt": timestamp}
        return {"type": "reading", "data": {**data, "patches": {"temperature:trends": patch}}}

    def send(*events: dict) -> None:
        message = {"type": "dashboard.events", "events": list(events)}
        # Off this thread, whose event loop is Playwright's.
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, get_channel_layer().group_send(group_name(org_id), message)).result()

    # The first after the page loaded is painted, and the next in line.
    send(reading(1000, last, 99.0), reading(1001, first, 55.0))
    fifty_five = re.compile(r'"max":55[,}]')
    expect(chart).to_have_attribute("data-trend", fifty_five, timeout=LIVE_TIMEOUT_MS)
    drawn = {p["timestamp"]: p["max"] for p in chart_points(page, room["id"])}
    assert (drawn[last], drawn[first]) == (99.0, 55.0)
    assert not [url for url in requested if url.endswith(trend_path)], requested

    # Out of line: the page fetches the trend, and draws what the API serves.
    with page.expect_response(lambda r: r.url.split("?")[0].endswith(trend_path), timeout=LIVE_TIMEOUT_MS):
        send(reading(1005, last, 66.0))
    expect(chart).not_to_have_attribute("data-trend", fifty_five, timeout=LIVE_TIMEOUT_MS)
    assert chart_points(page, room["id"]) == api(page, trend_path)["points"]

    # A patch painted while a fetch is on its way is painted again over the fetch's answer, which
    # can have been computed before the patch's change: held here until the patch was painted.
    held = []
    page.route(f"**{trend_path}", lambda route: held.append(route))
    with page.expect_request(lambda r: r.url.split("?")[0].endswith(trend_path), timeout=LIVE_TIMEOUT_MS):
        send(reading(2000, last, 33.0))  # out of line: fetched
    send(reading(2001, first, 44.0))  # in line after it: painted on the copy the page has
    expect(chart).to_have_attribute("data-trend", re.compile(r'"max":44[,}]'), timeout=LIVE_TIMEOUT_MS)
    # The answer, as one computed before the patch's change (and its newest bucket marked, to see
    # when it is drawn).
    answer = api(page, trend_path)
    answer["points"][-1] = point(last, 11.0)
    held[0].fulfill(json=answer)
    expect(chart).to_have_attribute("data-trend", re.compile(r'"max":11[,}]'), timeout=LIVE_TIMEOUT_MS)
    expected = [p if p["timestamp"] != first else point(first, 44.0) for p in answer["points"]]
    assert chart_points(page, room["id"]) == expected


def test_an_alert_created_in_another_tab_appears_here(context, org_ids, server, secret):
    """Two tabs of one user: an action in one reaches the other through the WebSocket alone."""
    watcher = context.new_page()
    org_id = open_dashboard(watcher, org_ids)
    actor = context.new_page()
    actor.goto(f"/orgs/{org_id}/")
    expect(actor.get_by_test_id("ws-status")).to_have_text("live", timeout=10_000)
    rows = expect_page_matches_api(watcher, org_id, timeout=10_000)["alertCounts"]["unresolved"]
    assert rows >= 1, "the seed leaves an open alert on Freezer 2"

    actor.get_by_test_id("alert-row").first.get_by_test_id("resolve-button").click()

    expect(watcher.get_by_test_id("alert-row")).to_have_count(rows - 1, timeout=LIVE_TIMEOUT_MS)
    expect(watcher.get_by_test_id("alerts-unresolved")).to_have_text(str(rows - 1), timeout=LIVE_TIMEOUT_MS)


def test_a_unit_renamed_in_the_admin_is_renamed_on_the_open_dashboard(browser, page, org_ids, server):
    """No dashboard event describes an admin edit: the page follows through `orgChanged`."""
    org_id = open_dashboard(page, org_ids)
    expect_page_matches_api(page, org_id, timeout=10_000)
    freezer = next(u for u in api(page, f"/api/orgs/{org_id}/units")["units"] if u["name"] == "Freezer 2")
    synced = page.evaluate("document.body.dataset.synced")
    admin = browser.new_context(base_url=server.url).new_page()
    try:
        admin_login(admin, "admin", "admin")
        admin.goto(f"/admin/stats/unit/{freezer['id']}/change/")
        admin.fill("#id_name", "Freezer 2 north")
        admin.click("input[name=_save]")
        expect(admin.locator(".messagelist")).to_contain_text("was changed successfully")

        cards = page.get_by_test_id("unit-card")
        expect(cards.filter(has_text="Freezer 2 north")).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
        expect(cards).to_have_count(len(api(page, f"/api/orgs/{org_id}/units")["units"]))
        assert page.evaluate("document.body.dataset.synced") != synced  # a resync, not a reload
        expect_page_matches_api(page, org_id)
    finally:
        admin.context.close()
        restore = f"Unit.objects.filter(pk='{freezer['id']}').update(name='Freezer 2')"
        server.shell(f"from stats.models import Unit; {restore}")


def test_after_a_server_restart_the_page_reconnects_and_shows_what_changed_meanwhile(page, org_ids, server):
    org_id = open_dashboard(page, org_ids)
    before = expect_page_matches_api(page, org_id, timeout=10_000)
    status = page.get_by_test_id("ws-status")

    server.stop()
    expect(status).to_have_text("reconnecting", timeout=5_000)
    # Change the data while no server runs: its event reaches nobody, only the resync can show it.
    server.shell(
        "import json; from stats.models import Organization as O; "
        "from realtime.ingest import ingest_uplink; from realtime.ttn import parse_envelope; "
        "from django.utils import timezone; now = timezone.now().isoformat(); "
        f"body = {{'end_device_ids': {{'dev_eui': '{DEMO1_COLD_ROOM}'}}, 'received_at': now, "
        "'uplink_message': {'f_cnt': 77, 'decoded_payload': {'temperature': -9.0}, 'received_at': now}}; "
        "print(ingest_uplink(org=O.objects.get(slug='demo-1'), envelope=parse_envelope(json.dumps(body).encode())))"
    )
    server.start()

    expect(status).to_have_text("live", timeout=RECONNECT_TIMEOUT_MS)
    expect(page.locator('[data-testid="tile-too-cold"] .n')).to_have_text(
        str(before["unitCounts"]["too_cold"] + 1), timeout=LIVE_TIMEOUT_MS
    )
    expect(page.get_by_test_id("alerts-unresolved")).to_have_text(
        str(before["alertCounts"]["unresolved"] + 1), timeout=LIVE_TIMEOUT_MS
    )
    expect(page.get_by_test_id("alert-row").filter(has_text="Cold Room 3")).to_have_count(1)
    expect_page_matches_api(page, org_id)


def test_a_non_member_gets_404_and_its_websocket_is_refused(page, org_ids):
    open_dashboard(page, org_ids)
    other = org_ids["demo-2"]

    response = page.request.get(f"/orgs/{other}/")
    assert response.status == 404
    close_code = page.evaluate(
        """(path) => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}${path}`);
            ws.onmessage = (m) => resolve("message: " + m.data);
            ws.onclose = (e) => resolve(e.code);
        })""",
        f"/ws/orgs/{other}/",
    )
    assert close_code == 4403
    assert page.goto(f"/orgs/{other}/").status == 404


def test_an_anonymous_visitor_is_sent_to_login_and_its_websocket_is_refused(page, org_ids):
    org_id = org_ids["demo-1"]
    page.goto(f"/orgs/{org_id}/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    close_code = page.evaluate(
        """(path) => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}${path}`);
            ws.onmessage = (m) => resolve("message: " + m.data);
            ws.onclose = (e) => resolve(e.code);
        })""",
        f"/ws/orgs/{org_id}/",
    )
    assert close_code == 4401


def test_a_probe_fault_shows_on_its_card_and_clears_with_a_reading(page, org_ids, server, secret):
    org_id = open_dashboard(page, org_ids)
    card = page.locator('[data-testid="unit-card"]').filter(has_text="Fridge 1")
    fridge = next(u for u in api(page, f"/api/orgs/{org_id}/units")["units"] if u["name"] == "Fridge 1")
    lht65 = {"brand_id": "dragino", "model_id": "lht65"}
    status_before = card.get_by_test_id("unit-status").inner_text()
    temp_before = card.get_by_test_id("unit-temp").inner_text()

    # Dragino LHT65 writes 327.67 when its probe is missing; the housing still reads the room.
    fault = {"TempC_DS": 327.67, "TempC_SHT": 22.6, "BatV": 3.05}
    response = post_uplink(server, dev_eui=DEMO1_FRIDGE, secret=secret, payload=fault, version_ids=lht65)
    assert response.json()["status"] == "fault", response.text
    expect(card.get_by_test_id("probe-fault")).to_contain_text("327.67", timeout=LIVE_TIMEOUT_MS)
    expect(card.get_by_test_id("unit-status")).to_have_text(status_before)
    expect(card.get_by_test_id("unit-temp")).to_have_text(temp_before)

    reading = {"TempC_DS": (fridge["tempMin"] + fridge["tempMax"]) / 2, "TempC_SHT": 22.6, "BatV": 3.05}
    response = post_uplink(server, dev_eui=DEMO1_FRIDGE, secret=secret, payload=reading, version_ids=lht65)
    assert response.json()["status"] == "stored", response.text
    expect(card.get_by_test_id("probe-fault")).to_be_hidden(timeout=LIVE_TIMEOUT_MS)
