"""Acceptance 5: invalidating an organization deletes all its keys, sub-keys included, and no other."""

from __future__ import annotations

import fnmatch
import uuid

import pytest

from stats import cache
from stats.cache import QueryType, cache_key

pytestmark = pytest.mark.django_db


def warm(client, org, units) -> None:
    for path in ["stats", "units/status", "alerts/count", "devices/online"]:
        client.get(f"/api/orgs/{org.id}/{path}")
    for unit in units:
        client.get(f"/api/orgs/{org.id}/units/{unit.id}/trends")
        client.get(f"/api/orgs/{org.id}/alerts/count?unit={unit.id}")


def keys(redis_client, org) -> set[str]:
    return {k.decode() for k in redis_client.keys(f"dashboard:*{org.id}*")}


@pytest.mark.parametrize("sweep", [False, True], ids=["indexed", "delete_pattern"])
def test_invalidating_org_a_deletes_all_its_keys_with_sub_keys_and_none_of_org_b(dashboard, redis_client, sweep):
    warm(dashboard.client, dashboard.org_a, dashboard.units_a)
    warm(dashboard.outsider_client, dashboard.org_b, [dashboard.unit_b])
    a_keys, b_keys = keys(redis_client, dashboard.org_a), keys(redis_client, dashboard.org_b)
    assert len(a_keys) == 4 + 2 * 3
    assert any(":unit:" in k for k in a_keys)

    deleted = cache.invalidate_org(dashboard.org_a.id, sweep=sweep)

    assert deleted == len(a_keys)
    assert keys(redis_client, dashboard.org_a) == set()
    assert keys(redis_client, dashboard.org_b) == b_keys


def test_the_sweep_also_deletes_keys_the_index_does_not_know(dashboard, redis_client):
    orphan = cache_key(QueryType.TEMPERATURE_TRENDS, dashboard.org_a.id, uuid.uuid4())
    redis_client.set(orphan, b"[]", ex=60)  # written behind the index's back (e.g. an older release)
    assert cache.invalidate_org(dashboard.org_a.id) == 0
    assert redis_client.exists(orphan)
    assert cache.invalidate_org(dashboard.org_a.id, sweep=True) == 1
    assert not redis_client.exists(orphan)


def test_the_org_pattern_covers_per_unit_sub_keys(dashboard):
    # Trap 1: `dashboard:*:org:{id}` alone does not match `...:org:{id}:unit:{u}`.
    org, unit = dashboard.org_a.id, uuid.uuid4()
    pattern = cache.org_pattern(org)
    assert fnmatch.fnmatchcase(cache_key(QueryType.ALERTS_COUNT, org, unit), pattern)
    assert fnmatch.fnmatchcase(cache_key(QueryType.STATS, org), pattern)
    assert not fnmatch.fnmatchcase(cache_key(QueryType.STATS, dashboard.org_b.id), pattern)


@pytest.mark.parametrize("bad", ["*", "abc", "550e8400-e29b-41d4-a716-44665544000*", "x:org:y", "", None, 5])
def test_keys_are_built_only_from_valid_uuids(bad):
    with pytest.raises(cache.InvalidKeyPart):
        cache_key(QueryType.STATS, bad)
    with pytest.raises(cache.InvalidKeyPart):
        cache_key(QueryType.STATS, uuid.uuid4(), bad if bad is not None else "*")
    with pytest.raises(cache.InvalidKeyPart):
        cache.org_pattern(bad)


def test_set_resets_the_ttl_and_delete_removes_the_key(redis_client):
    key = cache_key(QueryType.STATS, uuid.uuid4())
    assert cache.set(key, b"{}", ttl=5)
    assert redis_client.ttl(key) == 5
    assert cache.set(key, b"{}")
    assert redis_client.ttl(key) == 60
    assert cache.get(key) == b"{}"
    assert cache.delete(key)
    assert cache.get(key) is None
