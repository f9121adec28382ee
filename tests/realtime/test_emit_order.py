"""Acceptance 2, per event: at the moment an event is handed to the channel layer, no key it
changes still holds its old value (invalidate first, then send): the key is gone, or, for the
keys an event refreshes (a reading's trend), already holds the value recomputed after it, its
single-flight lock released."""

from __future__ import annotations

import json
import uuid

import pytest
from channels.layers import get_channel_layer
from django.utils import timezone

from realtime import broadcast, events
from realtime.events import EventType
from stats import cache, queries, services
from stats.cache import QueryType, cache_key
from stats.models import Alert
from tests import factories

pytestmark = pytest.mark.django_db

OLD = b'{"old":true}'


@pytest.fixture
def spy(monkeypatch, redis_client):
    """Record, for each group_send: the group, the event types, how many of the events' keys
    still held their old value, and how many single-flight locks were held."""
    layer = get_channel_layer()
    original = layer.group_send
    seen: list[tuple[str, list[str], int, int]] = []

    async def group_send(group, message):
        keys = [k for e in pending for k in e.cache_keys()]
        stale = sum(1 for value in redis_client.mget(keys) if value == OLD)
        locks = len(redis_client.keys("dashmeta:lock:*"))
        seen.append((group, [m["type"] for m in message["events"]], stale, locks))
        return await original(group, message)

    pending: list = []
    monkeypatch.setattr(layer, "group_send", group_send)
    return seen, pending


def _every_event(org) -> list:
    unit = factories.unit(org)
    device = factories.device(unit)
    alert = factories.alert(unit)
    return [
        events.reading(unit, factories.reading(unit, 4.0), None),
        events.readings_backfilled(unit, [timezone.now()]),
        events.unit_update(unit, "ok"),
        *(
            events.alert_event(t, alert)
            for t in (
                EventType.ALERT_CREATED,
                EventType.ALERT_ACKNOWLEDGED,
                EventType.ALERT_ESCALATED,
                EventType.ALERT_RESOLVED,
            )
        ),
        events.device_status_change(device),
        events.org_changed(org.id),
    ]


def _comparable(raw: bytes) -> object:
    value = json.loads(raw)
    return {k: v for k, v in value.items() if k != "lastUpdated"} if isinstance(value, dict) else value


def test_every_event_type_is_sent_only_after_its_keys_are_deleted_or_refreshed(spy, redis_client):
    seen, pending = spy
    org = factories.organization()
    for event in _every_event(org):
        for key in event.cache_keys():
            assert cache.set(key, OLD)
        pending[:] = [event]
        broadcast.emit([event])
        assert broadcast.sends_flush()
        for key, effect in event.effects().items():
            if effect in (queries.Effect.UPDATE, queries.Effect.REFRESH, queries.Effect.REBUILD):
                # Cached without a state (`cache.set`): recomputed before the send, so it is exact.
                fresh = services.query_json(key.query_type, org_id=event.org_id, unit_id=key.unit_id, refresh=True)
                assert _comparable(redis_client.get(key)) == _comparable(fresh)
            else:
                assert redis_client.get(key) is None
    assert sorted(types[0] for _, types, _, _ in seen) == sorted(str(t) for t in EventType)
    assert all(stale == 0 and locks == 0 for _, _, stale, locks in seen), seen
    assert Alert.objects.count() == 1


def test_org_changed_is_sent_only_after_every_key_of_its_organization_is_deleted(monkeypatch, redis_client):
    org, elsewhere = factories.organization(), factories.organization()
    unit = factories.unit(org)
    keys = [cache_key(q, org.id) for q in QueryType if q is not QueryType.TEMPERATURE_TRENDS]
    keys += [cache_key(q, org.id, unit.id) for q in (QueryType.TEMPERATURE_TRENDS, QueryType.ALERTS_COUNT)]
    others = [cache_key(QueryType.STATS, elsewhere.id), cache_key(QueryType.STATS, uuid.uuid4())]
    for key in keys + others:
        assert cache.set(key, OLD)
    layer = get_channel_layer()
    original, seen = layer.group_send, []

    async def group_send(group, message):
        seen.append((group, [m["type"] for m in message["events"]], redis_client.exists(*keys)))
        return await original(group, message)

    monkeypatch.setattr(layer, "group_send", group_send)
    broadcast.emit([events.org_changed(org.id), events.reading(unit, factories.reading(unit, 4.0), None)])
    assert broadcast.sends_flush()

    assert seen == [(f"org.{org.id}", ["orgChanged", "reading"], 0)]
    assert redis_client.mget(others) == [OLD, OLD]
