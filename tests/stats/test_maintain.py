"""Several keys updated in place together: each gets its own update, a key whose state changed
between the read and the write is read again, and a stale state leaves its key invalidated."""

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
    return lambda value, state: (value + tag, state + tag)


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


def test_a_key_whose_state_moved_during_the_update_is_read_again_alone(redis_client):
    moving = _cached(redis_client, "00000000-0000-0000-0000-00000000000a", b"v1", b"s1")
    still = _cached(redis_client, "00000000-0000-0000-0000-00000000000b", b"v2", b"s2")
    calls = {moving: 0, still: 0}

    def update(key):
        def apply(value, state):
            calls[key] += 1
            if key == moving and calls[key] == 1:  # another change lands between our read and write
                redis_client.set(key, b"v1'", ex=60)
                redis_client.set(state_key(key), b"s1'", ex=3600)
            return value + b"+x", state + b"+x"

        return apply

    outcomes = cache.maintain({moving: update(moving), still: update(still)})

    assert outcomes == {moving: cache.Maintained.UPDATED, still: cache.Maintained.UPDATED}
    assert calls == {moving: 2, still: 1}
    assert redis_client.get(moving) == b"v1'+x"  # the other change is kept, ours applied on top
    assert redis_client.get(still) == b"v2+x"


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
