"""Cached reads the views call, and the invalidations that keep them right.

Each read returns response-ready JSON bytes: what is stored in Redis is exactly what a miss sends,
so a hit and a miss are byte-identical (NFR-CACHE-007).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson
from django.contrib.auth import get_user_model
from django.utils import timezone

from . import cache, queries, selectors, updaters
from .encoding import json_bytes
from .models import Membership, Organization
from .windowed import Stateful
from .windows import Reading, ms_to_next_bucket

UnitNotFound = selectors.UnitNotFound


def query_key(query: queries.Query, *, org_id: uuid.UUID, unit_id: uuid.UUID | None = None) -> cache.CacheKey:
    return cache.cache_key(query.name, org_id, unit_id)


def query_json(
    name: str,
    *,
    org_id: uuid.UUID,
    unit_id: uuid.UUID | None = None,
    refresh: bool = False,
    unless_locked: bool = False,
    from_state: bool = True,
) -> bytes | None:
    """The response bytes of the catalogue's query `name`: read through the cache when the
    catalogue caches it, computed (and stored) when `refresh`. A query with a rebuilder is
    rebuilt from its kept state when that is current, unless `from_state` is false (`?refresh=1`
    asks the database). Raises UnitNotFound (nothing cached) for a unit of another organization."""
    query = queries.by_name(name)
    ids = {"org_id": org_id, **({"unit_id": unit_id} if unit_id else {})}

    def produce() -> bytes | tuple[bytes, bytes]:
        if query.part_of is not None and unit_id is None:
            whole, field = query.part_of
            return json_bytes(orjson.loads(query_json(whole, org_id=org_id))[field])
        data = query.select(**ids)
        if isinstance(data, Stateful):
            return json_bytes(data.data), data.state
        return json_bytes(data)

    def rebuild(state: bytes) -> tuple[bytes, bytes] | None:
        data = query.rebuild(state, **ids)
        return None if data is None else (json_bytes(data.data), data.state)

    if not query.cached:
        return produce()
    key = query_key(query, org_id=org_id, unit_id=unit_id)
    from_kept = rebuild if query.rebuilder and from_state else None
    if refresh:
        return cache.recompute(key, produce, from_kept, unless_locked=unless_locked)
    return cache.read_through(key, produce, from_kept)


def change_keys(
    change: queries.Change, *, org_id: uuid.UUID, unit_id: uuid.UUID | None = None
) -> dict[cache.CacheKey, queries.Effect]:
    """Every cached key `change` can alter in the organization (the unit's own, for a change of one
    unit), with what the change does to it: the catalogue's declarations, as keys."""
    keys: dict[cache.CacheKey, queries.Effect] = {}
    for query, effect in queries.affected(change):
        if query.scope is not queries.Scope.UNIT:
            keys[query_key(query, org_id=org_id)] = effect
        if query.scope is not queries.Scope.ORG and change.unit_scoped and unit_id is not None:
            keys[query_key(query, org_id=org_id, unit_id=unit_id)] = effect
    return keys


@dataclass(frozen=True)
class Added:
    """What adding readings in place did: each key's outcome, and what the reading's event carries
    for the page to paint each updated value whose query has a patcher (`queries.Query.patcher`):
    per unit of a reading, per query name, the patcher's data with the key's generation before
    and after the update ("after", "at"), so that a page can tell whether it follows the last
    change it painted. A key that more than one of the readings changed has none."""

    outcomes: dict[cache.CacheKey, cache.Maintained]
    patches: dict[str, dict[str, object]]


def query_add_readings(keys: Iterable[cache.CacheKey], readings: Sequence[tuple[Reading, float, float]]) -> Added:
    """Add committed readings, each with its unit's (temp_min, temp_max), to cached values in
    place (each query's updater), all keys in two round trips. A key left `INVALIDATED` (cached
    without a state, or its state missed a change) is the caller's to refresh."""
    now = timezone.now()
    written: dict[cache.CacheKey, bytes] = {}  # each key's state from its last update: the one stored

    def adding(key: cache.CacheKey) -> cache.Update:
        updater = getattr(updaters, queries.by_name(key.query_type).updater)

        def update(value: bytes | None, state: bytes) -> tuple[bytes | None, bytes]:
            for reading, temp_min, temp_max in readings:
                value, state = updater(value, state, reading, temp_min, temp_max, now)
            written[key] = state
            return value, state

        return update

    generations: dict[cache.CacheKey, int] = {}
    outcomes = cache.maintain({key: adding(key) for key in keys}, moved_to=generations)
    patches: dict[str, dict[str, object]] = {}
    for key, outcome in outcomes.items():
        query = queries.by_name(key.query_type)
        if outcome is not cache.Maintained.UPDATED or not query.patcher:
            continue
        mine = [reading for reading, _, _ in readings if key.unit_id in (None, reading.unit_id)]
        if len(mine) == 1:
            data = getattr(updaters, query.patcher)(written[key], mine[0], now)
            at = generations[key]
            patches.setdefault(mine[0].unit_id, {})[query.name] = {"after": at - 1, "at": at, **data}
    return Added(outcomes, patches)


def query_refresh_ahead(key: cache.CacheKey, seconds_left: float | None) -> bool:
    """After a cached read: recompute the value in the background if it is near its expiry
    (`cache.refresh_ahead`), unless another process is computing it already."""
    query = queries.by_name(key.query_type)
    if query is None:
        return False
    if query.windowed and seconds_left is not None and seconds_left >= ms_to_next_bucket(timezone.now()) / 1000 - 1:
        return False  # it expires at the window's boundary: a value computed now would expire with it
    return cache.refresh_ahead(key, query.lead_seconds(), seconds_left, lambda: query_refresh(key, unless_locked=True))


def refresh_order(key: cache.CacheKey) -> int:
    """Refresh a value before the values that are its fields (`part_of`): they are read from it."""
    query = queries.by_name(key.query_type)
    return 1 if query is not None and query.part_of is not None and key.unit_id is None else 0


def query_refresh(key: cache.CacheKey, *, unless_locked: bool = False) -> None:
    """Recompute a cached key from the database and store it (unless invalidated meanwhile): an
    event's refresh. Raises UnitNotFound."""
    unit_id = uuid.UUID(key.unit_id) if key.unit_id else None
    query_json(key.query_type, org_id=uuid.UUID(key.org_id), unit_id=unit_id, refresh=True, unless_locked=unless_locked)


# --- who is asking -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    """What authorization needs about a signed-in user, cached so a hit costs no query."""

    user_id: int
    session_hash: str
    is_active: bool
    is_staff: bool
    roles: dict[str, str]  # organization id -> role

    def role_in(self, org_id: uuid.UUID) -> str | None:
        return self.roles.get(str(org_id))


def _principal_data(user_id: int) -> object:
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return None
    roles = dict(Membership.objects.filter(user_id=user_id).values_list("organization_id", "role"))
    return {
        "sessionHash": user.get_session_auth_hash(),
        "isActive": user.is_active,
        "isStaff": user.is_staff,
        "roles": {str(org): role for org, role in roles.items()},
    }


def webhook_organization(*, secret_digest: str) -> uuid.UUID | None:
    """The organization whose webhook secret has this SHA-256: from this process's tracked copy
    of its cached answer (every uplink asks; no round trip), else from the database; only a known
    secret is cached (a stream of wrong ones stores nothing). A secret's rotation or its
    organization's deletion deletes it (`signals`), and that reaches every process's copy."""
    key = cache.webhook_key(secret_digest)
    cached = cache.read_tracked(key)
    if cached is not None:
        return uuid.UUID(cached.decode())
    org_id = Organization.objects.filter(webhook_secret_sha256=secret_digest).values_list("id", flat=True).first()
    if org_id is not None:
        cache.set(key, str(org_id).encode())
    return org_id


def principal_get(*, user_id: int) -> Principal | None:
    raw = cache.read_through(cache.principal_key(user_id), lambda: json_bytes(_principal_data(user_id)))
    return principal_from_json(user_id=user_id, raw=raw)


# user id -> (the cached bytes, the Principal they decode to). Decoding is a pure function of the
# bytes, so reusing the result for identical bytes is exact; a user in many organizations has a
# principal of several kilobytes, whose decoding was 4 % of a fast-path hit's samples.
_decoded: dict[int, tuple[bytes, Principal | None]] = {}
_DECODED_MAX = 10_000


def _decode_principal(user_id: int, raw: bytes) -> Principal | None:
    data = orjson.loads(raw)
    if data is None:
        return None
    return Principal(
        user_id=user_id,
        session_hash=data["sessionHash"],
        is_active=data["isActive"],
        is_staff=data["isStaff"],
        roles=data["roles"],
    )


def principal_from_json(*, user_id: int, raw: bytes) -> Principal | None:
    """The cached form back into a Principal; None for a user that does not exist."""
    seen = _decoded.get(user_id)
    if seen is not None and seen[0] == raw:
        return seen[1]
    principal = _decode_principal(user_id, raw)
    if len(_decoded) >= _DECODED_MAX:
        _decoded.clear()
    _decoded[user_id] = (raw, principal)
    return principal


# --- invalidation ------------------------------------------------------------------------------
def principal_invalidate(*, user_ids: Iterable[int]) -> None:
    cache.invalidate_keys(cache.principal_key(user_id) for user_id in user_ids)


def org_invalidate(*, org_id: uuid.UUID, sweep: bool = False) -> int | None:
    return cache.invalidate_org(org_id, sweep=sweep)
