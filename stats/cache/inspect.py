"""What the admin's cache inspector reads: an organization's keys through its index, key counts of a
page of organizations, and the organizations that have an index at all (to find orphans). None
when Redis fails. Only the orphan search walks the keyspace, and only when staff ask for it."""

from __future__ import annotations

import uuid

from django.conf import settings

from .boundary import CacheUnavailable, redis_call
from .keys import META_NAMESPACE, CacheKey, canonical_uuid, index_key, parse_dashboard_key


def org_keys(org_id: uuid.UUID | str) -> list[CacheKey] | None:
    """The organization's cached keys, as its index names them (sorted)."""
    try:
        with redis_call("scan") as client:
            members = client.smembers(index_key(canonical_uuid(org_id)))
    except CacheUnavailable:
        return None
    return sorted(key for raw in members if (key := parse_dashboard_key(raw.decode())) is not None)


def org_key_counts(org_ids: list[str]) -> dict[str, int] | None:
    """How many keys each organization's index holds (one round trip for the page)."""
    try:
        with redis_call("scan") as client:
            pipeline = client.pipeline(transaction=False)
            for org_id in org_ids:
                pipeline.scard(index_key(canonical_uuid(org_id)))
            counts = pipeline.execute()
    except CacheUnavailable:
        return None
    return dict(zip(org_ids, (int(n) for n in counts), strict=True))


def indexed_orgs() -> list[str] | None:
    """Every organization with an index of cached keys: a SCAN of the keyspace (staff ask for it)."""
    prefix = f"{META_NAMESPACE}:idx:org:"
    try:
        with redis_call("scan") as client:
            found = [
                raw.decode()[len(prefix) :]
                for raw in client.scan_iter(match=f"{prefix}*", count=settings.DJANGO_REDIS_SCAN_ITERSIZE)
            ]
    except CacheUnavailable:
        return None
    return sorted(found)
