"""Acceptance 1 and 3: each event invalidates exactly the keys whose value it can change."""

from __future__ import annotations

import json

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from realtime.devices import devices_sweep
from stats import selectors
from stats.models import Alert, Device
from tests.conftest import metric
from tests.realtime.conftest import minutes, uplink

pytestmark = pytest.mark.django_db


# Generations of the warmed keys, taken when they were warmed.
_WARMED: dict[str, bytes | None] = {}


def _redis():
    return redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])


def warm_every_key(site) -> set[str]:
    org, (a, b) = site.org.id, site.units
    for path in [
        "stats",
        "units/status",
        "alerts/count",
        f"alerts/count?unit={a.id}",
        f"alerts/count?unit={b.id}",
        f"units/{a.id}/trends",
        f"units/{b.id}/trends",
        "devices/online",
    ]:
        assert site.client.get(f"/api/orgs/{org}/{path}").status_code == 200
    keys = {
        f"dashboard:stats:org:{org}",
        f"dashboard:units:status:org:{org}",
        f"dashboard:alerts:count:org:{org}",
        f"dashboard:alerts:count:org:{org}:unit:{a.id}",
        f"dashboard:alerts:count:org:{org}:unit:{b.id}",
        f"dashboard:temperature:trends:org:{org}:unit:{a.id}",
        f"dashboard:temperature:trends:org:{org}:unit:{b.id}",
        f"dashboard:devices:online:org:{org}",
    }
    _WARMED.clear()
    _WARMED.update(_generations(_redis(), keys))
    return keys


def _generations(redis_client, keys) -> dict[str, bytes | None]:
    keys = sorted(keys)
    return dict(zip(keys, redis_client.mget([f"dashmeta:gen:{k}" for k in keys]), strict=True))


def cached(redis_client) -> set[str]:
    """Keys still holding what `warm_every_key` cached: present, and not invalidated since (an
    invalidation bumps the key's generation). A refreshed key (a reading's trend) is present
    again but counts as invalidated."""
    keys = {key.decode() for key in redis_client.keys("dashboard:*")}
    now = _generations(redis_client, keys)
    return {key for key in keys if key in _WARMED and now[key] == _WARMED[key]}


def test_a_reading_that_changes_no_state_updates_its_trend_and_the_compliance_and_nothing_else(
    site, post, redis_client
):
    all_keys = warm_every_key(site)
    assert cached(redis_client) == all_keys
    post(uplink(site.devices[0].dev_eui, 4.0))
    trend = f"dashboard:temperature:trends:org:{site.org.id}:unit:{site.units[0].id}"
    stats = f"dashboard:stats:org:{site.org.id}"
    assert all_keys - cached(redis_client) == {trend, stats}
    # Updated in place, not deleted: still cached, and what a recomputation gives.
    assert json.loads(redis_client.get(trend)) == selectors.unit_trend(org_id=site.org.id, unit_id=site.units[0].id)
    fresh = selectors.organization_stats(org_id=site.org.id)
    assert {k: v for k, v in json.loads(redis_client.get(stats)).items() if k != "lastUpdated"} == {
        k: v for k, v in fresh.items() if k != "lastUpdated"
    }


def test_a_steady_stream_of_in_range_readings_keeps_counts_and_stats_cached(site, post, redis_client):
    warm_every_key(site)
    hits = metric("dashboard_cache_hit_total", query_type="stats")
    for i in range(20):
        post(uplink(site.devices[i % 2].dev_eui, 4.0 + i / 10))
        assert site.client.get(f"/api/orgs/{site.org.id}/stats").status_code == 200
    assert metric("dashboard_cache_hit_total", query_type="stats") == hits + 20  # updated in place: never a miss
    org = site.org.id
    assert {f"dashboard:units:status:org:{org}", f"dashboard:alerts:count:org:{org}"} <= cached(redis_client)
    assert redis_client.exists(f"dashboard:stats:org:{org}")


def test_an_excursion_invalidates_status_alert_counts_stats_and_that_units_keys_only(site, post, redis_client):
    all_keys = warm_every_key(site)
    org, a = site.org.id, site.units[0].id
    body = post(uplink(site.devices[0].dev_eui, 12.0)).json()
    assert set(body["events"]) == {"reading", "unitUpdate", "alertCreated"}
    assert all_keys - cached(redis_client) == {
        f"dashboard:stats:org:{org}",
        f"dashboard:units:status:org:{org}",
        f"dashboard:alerts:count:org:{org}",
        f"dashboard:alerts:count:org:{org}:unit:{a}",
        f"dashboard:temperature:trends:org:{org}:unit:{a}",
    }


def test_resolving_an_alert_invalidates_alert_counts_and_stats(
    site, post, redis_client, django_capture_on_commit_callbacks
):
    post(uplink(site.devices[1].dev_eui, 12.0))
    alert = Alert.objects.get()
    all_keys = warm_every_key(site)
    org, b = site.org.id, site.units[1].id
    with django_capture_on_commit_callbacks(execute=True):
        assert site.client.post(f"/api/orgs/{org}/alerts/{alert.id}/resolve").status_code == 200
    assert all_keys - cached(redis_client) == {
        f"dashboard:stats:org:{org}",
        f"dashboard:alerts:count:org:{org}",
        f"dashboard:alerts:count:org:{org}:unit:{b}",
    }


def test_a_device_going_offline_invalidates_devices_status_and_stats(
    site, redis_client, django_capture_on_commit_callbacks
):
    Device.objects.filter(id=site.devices[0].id).update(last_seen_at=timezone.now() - minutes(60))
    all_keys = warm_every_key(site)
    org = site.org.id
    with django_capture_on_commit_callbacks(execute=True):
        swept = devices_sweep()
    assert [e.type for e in swept] == ["deviceStatusChange", "unitUpdate"]
    assert all_keys - cached(redis_client) == {
        f"dashboard:devices:online:org:{org}",
        f"dashboard:stats:org:{org}",
        f"dashboard:units:status:org:{org}",
    }
    assert site.client.get(f"/api/orgs/{org}/devices/online").json() == {"online": 1, "offline": 1}
    assert site.client.get(f"/api/orgs/{org}/units/status").json()["offline"] == 1


def test_an_uplink_brings_an_offline_device_and_unit_back(site, post, redis_client, django_capture_on_commit_callbacks):
    Device.objects.filter(id=site.devices[0].id).update(last_seen_at=timezone.now() - minutes(60))
    with django_capture_on_commit_callbacks(execute=True):
        devices_sweep()
    warm_every_key(site)
    body = post(uplink(site.devices[0].dev_eui, 4.0)).json()
    assert set(body["events"]) == {"reading", "deviceStatusChange", "unitUpdate"}
    assert site.client.get(f"/api/orgs/{site.org.id}/devices/online").json() == {"online": 2, "offline": 0}
    assert site.client.get(f"/api/orgs/{site.org.id}/units/status").json()["offline"] == 0


def test_events_never_touch_another_organizations_keys(site, post, redis_client):
    from tests import factories

    other_member = factories.member(site.other_org)
    from django.test import Client

    other = Client()
    other.force_login(other_member)
    assert other.get(f"/api/orgs/{site.other_org.id}/stats").status_code == 200
    post(uplink(site.devices[0].dev_eui, 12.0))
    assert redis_client.exists(f"dashboard:stats:org:{site.other_org.id}")
