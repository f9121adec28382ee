"""Updating a cached value in place from its state, after a change: a reading added to its unit's
trend and to its organization's compliance, without a recomputation from the database.

The update reads the value with its state and generation, computes the new pair in Python, and
writes it only if nothing wrote the key meanwhile (compare-and-set on the generation, which every
write moves; on a conflict it reads again). The write bumps the key's generation like an
invalidation, so a computation that began before the change stores nothing. A key without a state
is invalidated instead (same round trip): the next reader computes it.

A state outlives its value (twice its TTL, and at least an hour: `scripts.STATE_MIN_SECONDS`):
every change since its computation is in it, so a value that expired can be rebuilt from it by the
next change, without the database. Without that, at a 60 s TTL, a unit reporting every minute
would find its trend expired at about every other reading, and one reporting every ten minutes at
every reading, each time recomputing 24 h of readings. A state that missed a change is not used
(`StaleState`); one that expired too is recomputed from the database by the next reader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
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


def maintain(
    changes: Mapping[CacheKey, Update], *, moved_to: dict[CacheKey, int] | None = None
) -> dict[CacheKey, Maintained]:
    """Apply each `update(value, state) -> (value, state)` to its cached key, atomically with
    respect to every other change and computation of that key. The keys are read in one round
    trip and written in another (a reading updates its trend and its organization's compliance
    together); a key whose write conflicted is read again. `moved_to`, if given, receives for each
    key written the generation its write moved it to (from the one read, plus one): this change's
    place among the key's writes, which a dashboard uses to order the changes it is sent."""
    if not changes or not is_enabled():
        return dict.fromkeys(changes, Maintained.ABSENT)
    outcomes: dict[CacheKey, Maintained] = {}
    pending = dict(changes)
    try:
        for _ in range(ATTEMPTS):
            with redis_call("get") as client:
                reads = scripts.run_all(
                    client, [(scripts.MAINTAIN_READ, _keys(key), [GENERATION_TTL_SECONDS]) for key in pending]
                )
            written, stale = [], []
            for key, read in zip(list(pending), reads, strict=True):
                if len(read) == 1:
                    outcomes[key] = Maintained.INVALIDATED if int(read[0]) else Maintained.ABSENT
                    continue
                value_read, state_read, generation = read
                try:
                    value, state = pending[key](value_read, state_read)
                except StaleState:
                    stale.append(key)
                    continue
                written.append((key, value, [generation, value or b"", state, key_ttl_ms(key), GENERATION_TTL_SECONDS]))
            calls = [(scripts.MAINTAIN_WRITE, [*_keys(key), index_key(key.org_id), *part_keys(key)], args)
                     for key, _, args in written]  # fmt: skip
            calls += [_invalidation(key) for key in stale]
            if calls:
                with redis_call("set") as client:
                    results = scripts.run_all(client, calls)
                for (key, value, args), stored in zip(written, results, strict=False):
                    if int(stored):
                        outcomes[key] = Maintained.UPDATED if value is not None else Maintained.STATE
                        if moved_to is not None:
                            moved_to[key] = int(args[0]) + 1
                outcomes.update(dict.fromkeys(stale, Maintained.INVALIDATED))
            pending = {key: update for key, update in pending.items() if key not in outcomes}
            if not pending:
                break
        else:  # kept conflicting
            with redis_call("invalidate") as client:
                scripts.run_all(client, [_invalidation(key) for key in pending])
            outcomes.update(dict.fromkeys(pending, Maintained.INVALIDATED))
    except CacheUnavailable:
        outcomes.update({key: Maintained.FAILED for key in changes if key not in outcomes})
    finally:
        near_forget(list(changes))
    for key, outcome in outcomes.items():
        CACHE_MAINTAINED.labels(key.query_type, str(outcome)).inc()
    return outcomes


def _keys(key: CacheKey) -> list[str]:
    return [key, state_key(key), key_generation_key(key)]


def _invalidation(key: CacheKey) -> tuple[scripts.Lua, list[str], list[object]]:
    return scripts.DELETE_AND_BUMP, _keys(key), [GENERATION_TTL_SECONDS]
