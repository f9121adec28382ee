"""Sessions read from Redis (no query on the hot path), through the cache boundary: while its
breaker is open they come straight from the database (a hung Redis must not cost every request a
socket timeout), and a failure is counted and logged there once per outage, not per request.
A session this process writes or deletes is dropped from its fast-path copies at once
(`stats.cache.near_forget`; other processes learn of it from Redis)."""

from __future__ import annotations

from django.contrib.sessions.backends.cached_db import SessionStore as CachedDBStore
from django.core.cache.backends.base import BaseCache

from . import cache


class _ThroughBoundary:
    """The sessions cache, every call made through `cache.guarded`. A failed read is a miss
    (every session is in the database too), a failed write is skipped. A delete is tried even
    while the breaker is open: a signed-out session must not stay valid in Redis."""

    def __init__(self, backend: BaseCache) -> None:
        self._backend = backend

    def get(self, key: str, default: object = None) -> object:
        return cache.guarded("session", lambda: self._backend.get(key, default), default)

    def set(self, key: str, value: object, timeout: int | None = None) -> None:
        cache.guarded("session", lambda: self._backend.set(key, value, timeout), None)

    def delete(self, key: str) -> None:
        cache.guarded("session", lambda: self._backend.delete(key), None, breaker=False)

    def __contains__(self, key: str) -> bool:
        return cache.guarded("session", lambda: key in self._backend, False)

    def make_key(self, key: str) -> str:
        return self._backend.make_key(key)


class SessionStore(CachedDBStore):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._cache = _ThroughBoundary(self._cache)

    def save(self, must_create: bool = False) -> None:
        super().save(must_create)
        self._forget(self.session_key)

    def delete(self, session_key: str | None = None) -> None:
        session_key = session_key or self.session_key
        super().delete(session_key)
        self._forget(session_key)

    def _forget(self, session_key: str | None) -> None:
        if session_key:
            cache.near_forget([self._cache.make_key(self.cache_key_prefix + session_key)])
