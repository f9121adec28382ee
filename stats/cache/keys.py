"""Cache keys: built once from validated parts and carried as values.

A `CacheKey` is the Redis key itself (a `str`, so Redis clients take it as it is) that also knows
its query type (the metrics' label) and its organization (the per-org index): nothing downstream
parses a key string back into its parts. Only UUIDs that parse as UUIDs reach a key.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from functools import cache

KEY_NAMESPACE = "dashboard"
# Bookkeeping lives outside `dashboard:*` so sweeps and the admin inspector only see values.
META_NAMESPACE = "dashmeta"
PRINCIPAL_PREFIX = "authz:user:"
PRINCIPAL_QUERY_TYPE = "authz"


@cache
def _query_types() -> type[StrEnum]:
    from .. import queries  # the catalogue reads the models: loaded once the app registry is ready

    return StrEnum("QueryType", [(query.member, query.name) for query in queries.cached()])


def __getattr__(name: str) -> object:
    """`QueryType`: the catalogue's cached query types as an enum (`QueryType.STATS`), built from
    the catalogue (their one source) on first use."""
    if name == "QueryType":
        return _query_types()
    raise AttributeError(name)


class InvalidKeyPart(ValueError):
    pass


class CacheKey(str):
    """A Redis key with its query type and organization (None for a principal's key)."""

    query_type: str
    org_id: str | None
    unit_id: str | None

    def __new__(cls, redis_key: str, query_type: str, org_id: str | None, unit_id: str | None = None) -> CacheKey:
        key = super().__new__(cls, redis_key)
        key.query_type, key.org_id, key.unit_id = query_type, org_id, unit_id
        return key

    def __reduce__(self):  # noqa: ANN204 - pickles (and copies) as the same value
        return (CacheKey, (str(self), self.query_type, self.org_id, self.unit_id))


def canonical_uuid(value: uuid.UUID | str) -> str:
    """The canonical form of a UUID; anything else is refused before it can reach a key."""
    if isinstance(value, uuid.UUID):
        return str(value)
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        raise InvalidKeyPart(f"not a UUID: {value!r}") from None


def cache_key(query_type: str, org_id: uuid.UUID | str, unit_id: uuid.UUID | str | None = None) -> CacheKey:
    """`dashboard:{queryType}:org:{orgId}[:unit:{unitId}]`, for a query type of the catalogue."""
    from .. import queries

    query = queries.by_name(str(query_type))
    if query is None or not query.cached:
        raise InvalidKeyPart(f"not a cached query type: {query_type!r}")
    org = canonical_uuid(org_id)
    unit = canonical_uuid(unit_id) if unit_id is not None else None
    key = f"{KEY_NAMESPACE}:{query.name}:org:{org}" + (f":unit:{unit}" if unit else "")
    return CacheKey(key, query.name, org, unit)


def part_keys(key: CacheKey) -> list[CacheKey]:
    """The organization's keys of the queries whose value is a field of `key`'s (`part_of`)."""
    if key.org_id is None or key.unit_id is not None:
        return []
    return [cache_key(name, key.org_id) for name in _parts_of(key.query_type)]


@cache
def _parts_of(query_type: str) -> tuple[str, ...]:
    """Once per query type: every in-place update asks."""
    from .. import queries

    return tuple(q.name for q in queries.cached() if q.part_of and q.part_of[0] == query_type)


def principal_key(user_id: int) -> CacheKey:
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id < 0:
        raise InvalidKeyPart(f"not a user id: {user_id!r}")
    return CacheKey(f"{PRINCIPAL_PREFIX}{user_id}", PRINCIPAL_QUERY_TYPE, None)


WEBHOOK_PREFIX = "authz:webhook:"


def webhook_key(secret_digest: str) -> CacheKey:
    """Which organization a webhook secret belongs to, by the secret's SHA-256 (never the secret)."""
    if len(secret_digest) != 64 or any(c not in "0123456789abcdef" for c in secret_digest):
        raise InvalidKeyPart("not a SHA-256 hex digest")
    return CacheKey(f"{WEBHOOK_PREFIX}{secret_digest}", "webhook", None)


def parse_dashboard_key(raw: str) -> CacheKey | None:
    """A dashboard key as this module builds it, from text someone typed (the admin inspector's
    forms, a scan of the keyspace); None for anything else."""
    prefix = f"{KEY_NAMESPACE}:"
    if not raw.startswith(prefix) or ":org:" not in raw:
        return None
    query_type, _, rest = raw[len(prefix) :].partition(":org:")
    org, _, unit = rest.partition(":unit:")
    try:
        key = cache_key(query_type, org, unit or None)
    except InvalidKeyPart:
        return None
    return key if key == raw else None


def org_pattern(org_id: uuid.UUID | str) -> str:
    # The trailing `*` is what covers `...:org:{id}:unit:{u}`: a pattern ending at the org id
    # would leave every per-unit key behind.
    return f"{KEY_NAMESPACE}:*:org:{canonical_uuid(org_id)}*"


def org_generation_key(org_id: str) -> str:
    return f"{META_NAMESPACE}:gen:org:{org_id}"


def key_generation_key(key: str) -> str:
    return f"{META_NAMESPACE}:gen:{key}"


STATE_PREFIX = f"{META_NAMESPACE}:state:"


def state_key(key: str) -> str:
    """Where the state a change updates `key` from is kept (see `stats.windows`)."""
    return f"{STATE_PREFIX}{key}"


def index_key(org_id: str) -> str:
    return f"{META_NAMESPACE}:idx:org:{org_id}"


def lock_key(key: str) -> str:
    return f"{META_NAMESPACE}:lock:{key}"


def make_key(key: str, key_prefix: str, version: int) -> str:
    """django-redis KEY_FUNCTION: keys are stored exactly as built here, no prefix or version."""
    return key
