"""Invalidation: named keys, or every key of an organization through its index, each bumping the
generations a computation in flight checks before it stores. Never a keyspace SCAN on the hot
path (a SCAN walks every key in Redis: 0.8 s over 100k keys); `delete_pattern` is only the
admin's explicit sweep, for keys the index may not know."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import caches

from . import scripts
from .boundary import CacheUnavailable, is_enabled, redis_call
from .keys import (
    KEY_NAMESPACE,
    STATE_PREFIX,
    CacheKey,
    canonical_uuid,
    index_key,
    key_generation_key,
    org_generation_key,
    org_pattern,
    state_key,
)
from .lane import near_forget
from .metrics import CACHE_INVALIDATION_SECONDS, CACHE_INVALIDATIONS, CACHE_KEYS_DELETED

logger = logging.getLogger("stats.cache")

# A generation must outlive any computation that read it; a day is far beyond that.
GENERATION_TTL_SECONDS = 86_400


def delete(key: CacheKey) -> bool:
    """Delete one key (and bump its generation so an in-flight computation cannot restore it)."""
    return invalidate_keys([key]) is not None


def invalidate_keys(keys: Iterable[CacheKey]) -> int | None:
    """Delete the named keys and bump their generations; the number deleted, None on failure."""
    deleted = invalidate_keys_present(keys)
    return None if deleted is None else len(deleted)


def invalidate_keys_present(keys: Iterable[CacheKey], *, keep_state: Iterable[CacheKey] = ()) -> list[CacheKey] | None:
    """Delete the named keys and their states (but those of `keep_state`, to be rebuilt from
    them) and bump their generations; the keys that were cached (and are now deleted), None on
    failure."""
    keys, keep = list(dict.fromkeys(keys)), set(keep_state)
    if not keys or not is_enabled():
        return []
    triples: list[str] = []
    for key in keys:
        triples += [key, state_key(key), key_generation_key(key)]
    args = [GENERATION_TTL_SECONDS, *("keep" if key in keep else "" for key in keys)]
    started = time.perf_counter()
    try:
        with redis_call("invalidate") as client:
            flags = scripts.run(client, scripts.DELETE_AND_BUMP, triples, args)
    except CacheUnavailable:
        return None
    finally:
        near_forget(keys)
    deleted = [key for key, flag in zip(keys, flags, strict=True) if int(flag)]
    CACHE_INVALIDATION_SECONDS.labels("keys").observe(time.perf_counter() - started)
    CACHE_INVALIDATIONS.labels("keys").inc()
    CACHE_KEYS_DELETED.inc(len(deleted))
    logger.debug("[CacheService] Invalidated keys: %s (%d deleted)", ", ".join(keys), len(deleted))
    return deleted


def invalidate_org(org_id: uuid.UUID | str, *, sweep: bool = False) -> int | None:
    """Delete every cached key of an organization, per-unit sub-keys included.

    Uses the per-org index (cost independent of other keys in Redis). `sweep=True` also runs
    `delete_pattern` over the keyspace, for keys the index may not know (admin, recovery).
    Returns the number of keys deleted, None when Redis failed.
    """
    org = canonical_uuid(org_id)
    if not is_enabled():
        return 0
    scope = "org_sweep" if sweep else "org"
    started = time.perf_counter()
    try:
        with redis_call("invalidate") as client:
            deleted = int(
                scripts.run(
                    client,
                    scripts.INVALIDATE_INDEXED,
                    [index_key(org), org_generation_key(org)],
                    [GENERATION_TTL_SECONDS, STATE_PREFIX],
                )
            )
        if sweep:
            pattern = org_pattern(org)
            with redis_call("invalidate"):
                deleted += int(caches["default"].delete_pattern(pattern, itersize=settings.DJANGO_REDIS_SCAN_ITERSIZE))
            logger.info("[CacheService] Invalidated pattern: %s", pattern)
    except CacheUnavailable:
        return None
    finally:
        near_forget(org_id=org)
    CACHE_INVALIDATION_SECONDS.labels(scope).observe(time.perf_counter() - started)
    CACHE_INVALIDATIONS.labels(scope).inc()
    CACHE_KEYS_DELETED.inc(deleted)
    logger.info("[CacheService] Invalidated org %s (%d keys)", org, deleted)
    return deleted


def scan_keys(match: str = f"{KEY_NAMESPACE}:*", limit: int = 5000) -> list[str] | None:
    """Up to `limit` cached keys matching `match` (admin inspector); None when Redis fails."""
    try:
        with redis_call("scan") as client:
            found: list[str] = []
            for raw in client.scan_iter(match=match, count=settings.DJANGO_REDIS_SCAN_ITERSIZE):
                found.append(raw.decode())
                if len(found) >= limit:
                    break
    except CacheUnavailable:
        return None
    return sorted(found)
