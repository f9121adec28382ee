"""The admin cache inspector in Chromium, on keys the dashboard itself created."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import admin_login, expect_page_matches_api, login

pytestmark = pytest.mark.live

INSPECTOR = "/admin/stats/organization/cache/"


def warm_cache_as_demo(browser, server, org_ids) -> None:
    """Open demo-1's dashboard so its keys are cached, then close it (no refetch resets TTLs)."""
    ctx = browser.new_context(base_url=server.url)
    try:
        page = ctx.new_page()
        login(page, "demo", "demo")
        expect(page.get_by_test_id("ws-status")).to_have_text("live", timeout=10_000)
        expect_page_matches_api(page, org_ids["demo-1"], timeout=10_000)
    finally:
        ctx.close()


def ttl_of(page: Page, key: str) -> int:
    text = page.locator(f'[data-testid="cache-key"][data-key="{key}"] [data-testid="ttl"]').inner_text()
    match = re.fullmatch(r"(\d+) s", text.strip())
    assert match, f"TTL cell {text!r}"
    return int(match.group(1))


def test_an_admin_sees_the_dashboard_keys_counting_down_deletes_one_and_invalidates_the_org(
    browser, page, server, org_ids
):
    org_id = org_ids["demo-1"]
    warm_cache_as_demo(browser, server, org_ids)
    stats_key = f"dashboard:stats:org:{org_id}"

    admin_login(page, "admin", "admin")
    page.goto("/admin/")
    page.get_by_test_id("cache-inspector-link").click()
    expect(page).to_have_url(re.compile(re.escape(INSPECTOR) + "$"))
    expect(page.locator('[data-testid="policy-row"][data-query-type="stats"]')).to_have_count(1)
    page.get_by_test_id("org-search-input").fill("harbour")
    page.get_by_test_id("org-search-input").press("Enter")
    row = page.locator(f'[data-testid="org-row"][data-org-id="{org_id}"]')
    expect(page.get_by_test_id("org-row")).to_have_count(1)
    assert int(row.get_by_test_id("org-key-count").inner_text()) >= 4
    row.get_by_role("link").click()
    group = page.locator(f'[data-testid="cache-org"][data-org-id="{org_id}"]')
    expect(group).to_contain_text("Harbour Bistro")
    expect(group.locator(f'[data-key="{stats_key}"]')).to_have_count(1)
    assert group.locator('[data-testid="cache-key"][data-key*=":unit:"]').count() >= 3  # one trend per unit
    expect(group.locator(f'[data-key="{stats_key}"] [data-testid="value"]')).to_contain_text('"unitCounts": {')

    page.screenshot(path="/tmp/cache_inspector.png", full_page=True)
    first = ttl_of(page, stats_key)
    page.reload()
    second = ttl_of(page, stats_key)
    assert 0 < second <= first <= 60

    # Delete one key.
    trend_keys = group.locator('[data-testid="cache-key"][data-key*="temperature:trends"]')
    doomed = trend_keys.first.get_attribute("data-key")
    trend_keys.first.get_by_test_id("delete-key").click()
    expect(page.locator(".messagelist")).to_contain_text(f"Deleted {doomed}")
    expect(page.locator(f'[data-key="{doomed}"]')).to_have_count(0)
    expect(page.locator(f'[data-key="{stats_key}"]')).to_have_count(1)

    # Invalidate the organization: all its keys go, per-unit ones included.
    group.get_by_test_id("invalidate-org").first.click()
    expect(page.locator(".messagelist")).to_contain_text("Invalidated Harbour Bistro")
    expect(group.get_by_test_id("no-keys")).to_be_visible()
    expect(page.locator('[data-testid="cache-key"][data-key*="' + org_id + '"]')).to_have_count(0)
    # The counters come from this process's registry: the dashboard's reads were counted.
    expect(page.locator('[data-testid="counter-row"][data-query-type="stats"]')).to_have_count(1)


def test_staff_without_change_permission_see_no_controls_and_a_forged_post_is_refused(browser, page, server, org_ids):
    server.shell(
        "from django.contrib.auth.models import Permission, User; "
        "u, _ = User.objects.get_or_create(username='auditor', defaults={'is_staff': True}); "
        "u.set_password('auditor-pw'); u.save(); "
        "u.user_permissions.set(Permission.objects.filter(codename='view_organization'))"
    )
    warm_cache_as_demo(browser, server, org_ids)
    stats_key = f"dashboard:stats:org:{org_ids['demo-1']}"

    admin_login(page, "auditor", "auditor-pw")
    page.goto(f"{INSPECTOR}?org={org_ids['demo-1']}")
    expect(page.locator(f'[data-key="{stats_key}"]')).to_have_count(1)
    expect(page.get_by_test_id("read-only")).to_be_visible()
    expect(page.get_by_test_id("delete-key")).to_have_count(0)
    expect(page.get_by_test_id("invalidate-org")).to_have_count(0)

    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    for form in (
        {"action": "delete_key", "key": stats_key},
        {"action": "invalidate_org", "org_id": org_ids["demo-1"]},
    ):
        response = page.request.post(
            INSPECTOR,
            form={**form, "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{server.url}{INSPECTOR}"},
            max_redirects=0,
        )
        assert response.status == 403, form
    page.reload()
    expect(page.locator(f'[data-key="{stats_key}"]')).to_have_count(1)

    # The same POST with the change permission is accepted: the 403 was the permission, not CSRF.
    server.shell(
        "from django.contrib.auth.models import Permission, User; "
        "User.objects.get(username='auditor').user_permissions.add(Permission.objects.get(codename='change_organization'))"
    )
    response = page.request.post(
        INSPECTOR,
        form={"action": "delete_key", "key": stats_key, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{server.url}{INSPECTOR}"},
        max_redirects=0,
    )
    assert response.status == 302
    page.reload()
    expect(page.locator(f'[data-key="{stats_key}"]')).to_have_count(0)
