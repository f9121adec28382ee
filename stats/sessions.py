"""Sessions read from Redis (no query on the hot path), straight from the database while the
cache boundary's breaker is open: a hung Redis must not cost every request two socket timeouts."""

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
