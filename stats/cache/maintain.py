"""Updating a cached value in place from its state, after a change: a reading added to its unit's
trend and to its organization's compliance, without a recomputation from the database.

The update reads the value with its state, computes the new pair in Python, and writes it only if
the state is still the one it read (compare-and-set; on a conflict it reads again). The write
bumps the key's generation like an invalidation, so a computation that began before the change
stores nothing. A key without a state is invalidated instead (same round trip): the next reader
computes it.

A state outlives its value (twice its TTL, and at least an hour: `scripts.STATE_MIN_SECONDS`): every change
since its computation is in it, so a value that expired can be rebuilt from it by the next change,
without the database. Without that, at a 60 s TTL, a unit reporting every minute would find its
trend expired at about every other reading, and one reporting every ten minutes at every reading,
each time recomputing 24 h of readings. A state that missed a change is not used (`StaleState`);
one that expired too is recomputed from the database by the next reader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum

from . import scripts
from .boundary import CacheUnavailable, is_enabled, redis_call
from .invalidation import GENERATION_TTL_SECONDS
from .keys import CacheKey, index_key, key_generation_key, part_keys, state_key
from .lane import near_forget
from .metrics import CACHE_MAINTAINED
from .ttl import key_ttl_ms

logger = logging.getLogger("stats.cache")

ATTEMPTS = 3  # conflicts need two changes of one key within a round trip: rare, and then we invalidate


class StaleState(Exception):
    """Raised by an update whose state lacks an earlier change: the key is recomputed instead."""


class Maintained(StrEnum):
    UPDATED = "updated"  # the new value is stored
    STATE = "state"  # the value was absent and is not rebuilt from the state alone: its state is updated
    INVALIDATED = "invalidated"  # it was cached without a state (or kept conflicting): deleted
    ABSENT = "absent"  # nothing was cached (the generation was bumped all the same)
    FAILED = "failed"  # Redis failed: nothing known


# (value or None when it expired, state) -> (value, state); the value None when it expired and
# cannot be rebuilt from the state alone (the state is updated all the same, for the next read's
# rebuild).
Update = Callable[[bytes | None, bytes], tuple[bytes | None, bytes]]


def maintain(key: CacheKey, update: Update) -> Maintained:
    """Apply `update(value, state) -> (value, state)` to the cached key, atomically with respect to
    every other change and computation of it."""
    if not is_enabled():
        return Maintained.ABSENT
    keys = [key, state_key(key), key_generation_key(key)]
    try:
        for _ in range(ATTEMPTS):
            with redis_call("get") as client:
                read = scripts.run(client, scripts.MAINTAIN_READ, keys, [GENERATION_TTL_SECONDS])
            if len(read) == 1:
                outcome = Maintained.INVALIDATED if int(read[0]) else Maintained.ABSENT
                break
            try:
                value, state = update(read[0], read[1])
            except StaleState:
                with redis_call("invalidate") as client:
                    scripts.run(client, scripts.DELETE_AND_BUMP, keys, [GENERATION_TTL_SECONDS])
                outcome = Maintained.INVALIDATED
                break
            with redis_call("set") as client:
                written = scripts.run(
                    client,
                    scripts.MAINTAIN_WRITE,
                    [*keys, index_key(key.org_id), *part_keys(key)],
                    [read[1], value or b"", state, key_ttl_ms(key), GENERATION_TTL_SECONDS],
                )
            if int(written):
                outcome = Maintained.UPDATED if value is not None else Maintained.STATE
                break
        else:
            with redis_call("invalidate") as client:
                scripts.run(client, scripts.DELETE_AND_BUMP, keys, [GENERATION_TTL_SECONDS])
            outcome = Maintained.INVALIDATED
    except CacheUnavailable:
        outcome = Maintained.FAILED
    finally:
        near_forget([key])
    CACHE_MAINTAINED.labels(key.query_type, str(outcome)).inc()
    return outcome
