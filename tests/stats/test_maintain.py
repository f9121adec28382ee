"""Several keys updated in place together: each gets its own update, a key written by anything
else between the read and the write (another update, a computation storing its value, an event's
rebuild) is read again, and a stale state leaves its key invalidated."""

from __future__ import annotations

import uuid

import pytest

from stats import cache
from stats.cache.keys import key_generation_key, state_key

pytestmark = pytest.mark.django_db


def _cached(redis_client, unit: str, value: bytes, state: bytes) -> cache.CacheKey:
    key = cache.cache_key("temperature:trends", uuid.UUID(int=1), uuid.UUID(unit))
    redis_client.set(key, value, ex=60)
    redis_client.set(state_key(key), state, ex=3600)
    return key


def _appending(tag: bytes):
    return lambda value, state: (None if value is None else value + tag, state + tag)


def _landing_once(key: cache.CacheKey, other_change):
    """An update of `key` that lets `other_change()` land between its first read and its write,
    and counts its calls."""
    calls = []

    def apply(value, state):
        calls.append((value, state))
        if len(calls) == 1:
            other_change()
        return _appending(b"+x")(value, state)

    return apply, calls


def test_each_key_gets_its_own_update_in_one_call(redis_client):
    first = _cached(redis_client, "00000000-0000-0000-0000-00000000000a", b"v1", b"s1")
    second = _cached(redis_client, "00000000-0000-0000-0000-00000000000b", b"v2", b"s2")
    generation = int(redis_client.get(key_generation_key(first)) or 0)

    outcomes = cache.maintain({first: _appending(b"+a"), second: _appending(b"+b")})

    assert outcomes == {first: cache.Maintained.UPDATED, second: cache.Maintained.UPDATED}
    assert (redis_client.get(first), redis_client.get(state_key(first))) == (b"v1+a", b"s1+a")
    assert (redis_client.get(second), redis_client.get(state_key(second))) == (b"v2+b", b"s2+b")
    # The generation moved: a computation begun before stores nothing.
    assert int(redis_client.get(key_generation_key(first))) == generation + 1
    assert 0 < redis_client.pttl(first) <= 60_000


def test_a_key_another_update_wrote_during_the_update_is_read_again_alone(redis_client):
    moving = _cached(redis_client, "00000000-0000-0000-0000-00000000000a", b"v1", b"s1")
    still = _cached(redis_client, "00000000-0000-0000-0000-00000000000b", b"v2", b"s2")
    apply, calls = _landing_once(moving, lambda: cache.maintain({moving: _appending(b"'")}))

    outcomes = cache.maintain({moving: apply, still: _appending(b"+x")})

    assert outcomes == {moving: cache.Maintained.UPDATED, still: cache.Maintained.UPDATED}
    assert calls == [(b"v1", b"s1"), (b"v1'", b"s1'")]
    assert redis_client.get(moving) == b"v1'+x"  # the other change is kept, ours applied on top
    assert redis_client.get(state_key(moving)) == b"s1'+x"
    assert redis_client.get(still) == b"v2+x"


def test_a_value_stored_from_the_state_during_the_update_is_updated_too(redis_client):
    """The value had expired; a reader rebuilt it from the state (same bytes) and stored it while
    the change was between its read and its write. Writing the new state alone would leave that
    value beside it without the change."""
    key = _cached(redis_client, "00000000-0000-0000-0000-00000000000a", b"v1", b"s1")
    redis_client.delete(key)
    apply, calls = _landing_once(key, lambda: cache.read_through(key, lambda: (b"v1", b"s1")))

    assert cache.maintain({key: apply}) == {key: cache.Maintained.UPDATED}
    assert calls == [(None, b"s1"), (b"v1", b"s1")]
    assert (redis_client.get(key), redis_client.get(state_key(key))) == (b"v1+x", b"s1+x")


def test_a_value_an_event_rebuilt_during_the_update_is_not_overwritten(redis_client):
    """An event that alters what the state does not hold deletes the value (keeping the state) and
    rebuilds it: the update applies on top of the rebuilt value, not of the one it read first."""
    key = _cached(redis_client, "00000000-0000-0000-0000-00000000000a", b"v1", b"s1")

    def rebuilt() -> None:
        cache.invalidate_keys_present([key], keep_state=[key])
        cache.recompute(key, lambda: (b"v2", b"s1"))

    apply, calls = _landing_once(key, rebuilt)

    assert cache.maintain({key: apply}) == {key: cache.Maintained.UPDATED}
    assert calls == [(b"v1", b"s1"), (b"v2", b"s1")]
    assert (redis_client.get(key), redis_client.get(state_key(key))) == (b"v2+x", b"s1+x")


def test_a_stale_state_invalidates_its_key_only(redis_client):
    stale = _cached(redis_client, "00000000-0000-0000-0000-00000000000a", b"v1", b"s1")
    fine = _cached(redis_client, "00000000-0000-0000-0000-00000000000b", b"v2", b"s2")

    def missed(value, state):
        raise cache.StaleState("a reading was missed")

    outcomes = cache.maintain({stale: missed, fine: _appending(b"+b")})

    assert outcomes == {stale: cache.Maintained.INVALIDATED, fine: cache.Maintained.UPDATED}
    assert redis_client.get(stale) is None and redis_client.get(state_key(stale)) is None
    assert redis_client.get(fine) == b"v2+b"


def test_scripts_redis_no_longer_holds_are_sent_whole(redis_client):
    key = _cached(redis_client, "00000000-0000-0000-0000-00000000000a", b"v1", b"s1")
    redis_client.script_flush()

    assert cache.maintain({key: _appending(b"+a")}) == {key: cache.Maintained.UPDATED}
    assert redis_client.get(key) == b"v1+a"


def test_redis_down_reports_every_key_failed(redis_down):
    keys = [cache.cache_key("temperature:trends", uuid.UUID(int=1), uuid.UUID(int=n)) for n in (2, 3)]
    assert cache.maintain({key: _appending(b"+") for key in keys}) == dict.fromkeys(keys, cache.Maintained.FAILED)
