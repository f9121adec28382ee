"""Cached reads the views call, and the invalidations that keep them right.

Each read returns response-ready JSON bytes: what is stored in Redis is exactly what a miss sends,
so a hit and a miss are byte-identical (NFR-CACHE-007).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder

from . import cache, selectors
from .cache import QueryType, cache_key
from .models import Membership


class UnitNotFound(Exception):
    pass


def json_bytes(value: object) -> bytes:
    return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def _read(key: str, compute: Callable[[], object], *, refresh: bool = False) -> bytes:
    produce = lambda: json_bytes(compute())  # noqa: E731 - a one-line adapter
    return cache.recompute(key, produce) if refresh else cache.read_through(key, produce)


def org_stats_json(*, org_id: uuid.UUID, refresh: bool = False) -> bytes:
    return _read(
        cache_key(QueryType.STATS, org_id), lambda: selectors.organization_stats(org_id=org_id), refresh=refresh
    )


def unit_status_json(*, org_id: uuid.UUID) -> bytes:
    return _read(cache_key(QueryType.UNITS_STATUS, org_id), lambda: selectors.unit_status_counts(org_id=org_id))


def _unit_or_raise(org_id: uuid.UUID, unit_id: uuid.UUID):
    unit = selectors.unit_in_org(org_id=org_id, unit_id=unit_id)
    if unit is None:
        raise UnitNotFound(str(unit_id))
    return unit


def alert_counts_json(*, org_id: uuid.UUID, unit_id: uuid.UUID | None = None) -> bytes:
    """Raises UnitNotFound (nothing cached) when `unit_id` is not a unit of the organization."""

    def compute() -> object:
        if unit_id is not None:
            _unit_or_raise(org_id, unit_id)
        return selectors.alert_counts(org_id=org_id, unit_id=unit_id)

    return _read(cache_key(QueryType.ALERTS_COUNT, org_id, unit_id), compute)


def _trends(org_id: uuid.UUID, unit_id: uuid.UUID) -> object:
    unit = _unit_or_raise(org_id, unit_id)
    return {"unitId": str(unit.id), "points": selectors.temperature_trends(unit=unit)}


def temperature_trends_json(*, org_id: uuid.UUID, unit_id: uuid.UUID) -> bytes:
    """Raises UnitNotFound (nothing cached) when the unit is not in the organization."""
    return _read(cache_key(QueryType.TEMPERATURE_TRENDS, org_id, unit_id), lambda: _trends(org_id, unit_id))


def temperature_trends_refresh(*, org_id: uuid.UUID, unit_id: uuid.UUID) -> None:
    """Recompute a unit's trend and store it (unless invalidated meanwhile). Raises UnitNotFound."""
    cache.recompute(
        cache_key(QueryType.TEMPERATURE_TRENDS, org_id, unit_id), lambda: json_bytes(_trends(org_id, unit_id))
    )


def devices_online_json(*, org_id: uuid.UUID) -> bytes:
    return _read(cache_key(QueryType.DEVICES_ONLINE, org_id), lambda: selectors.device_online_counts(org_id=org_id))


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


def principal_get(*, user_id: int) -> Principal | None:
    raw = cache.read_through(cache.principal_key(user_id), lambda: json_bytes(_principal_data(user_id)))
    return principal_from_json(user_id=user_id, raw=raw)


# user id -> (the cached bytes, the Principal they decode to). Decoding is a pure function of the
# bytes, so reusing the result for identical bytes is exact; a user in many organizations has a
# principal of several kilobytes, whose decoding was 4 % of a fast-path hit's samples.
_decoded: dict[int, tuple[bytes, Principal | None]] = {}
_DECODED_MAX = 10_000


def _decode_principal(user_id: int, raw: bytes) -> Principal | None:
    data = json.loads(raw)
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
