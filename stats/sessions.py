"""Sessions read from Redis (no query on the hot path), straight from the database while the
cache boundary's breaker is open: a hung Redis must not cost every request two socket timeouts.
A session this process writes or deletes is dropped from its fast-path copies at once
(`stats.cache.near_forget`; other processes learn of it from Redis)."""

from __future__ import annotations

from django.contrib.sessions.backends.cached_db import SessionStore as CachedDBStore
from django.contrib.sessions.backends.db import SessionStore as DBStore

from . import cache


class SessionStore(CachedDBStore):
    def load(self) -> dict:
        return super().load() if cache.redis_usable() else DBStore.load(self)

    def save(self, must_create: bool = False) -> None:
        if cache.redis_usable():
            super().save(must_create)
        else:
            DBStore.save(self, must_create)
        self._forget(self.session_key)

    def delete(self, session_key: str | None = None) -> None:
        session_key = session_key or self.session_key
        super().delete(session_key)
        self._forget(session_key)

    def _forget(self, session_key: str | None) -> None:
        if session_key:
            cache.near_forget([self._cache.make_key(self.cache_key_prefix + session_key)])
