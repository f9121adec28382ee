"""Test-only switches installed as apps, so they act in every process on the test settings: the
test run itself and the servers the tests start.

- `WithoutInPlaceUpdates` turns one mechanism off, to show that the test watching it fails
  without it (`DJANGO_SETTINGS_MODULE=tests.settings_without_updates`).
- `WindowBoundaryABucketAway` (in `tests.settings`): the cache sees the next 15-minute boundary a
  whole bucket away. A trend or the stats cached by a test expire at the real one, and a test
  running across it would find its cached value gone; the tests of the boundary itself
  (`window_boundary` marker) see the real one.
"""

from __future__ import annotations

from django.apps import AppConfig


class WithoutInPlaceUpdates(AppConfig):
    """Readings update no cached value in place: the stats keep their compliance until the TTL,
    as before the windowed states (the trend is still refreshed, as then)."""

    name = "tests"
    label = "tests_without_updates"

    def ready(self) -> None:
        from stats import queries

        for query in queries.QUERIES:
            if query.effects.get(queries.READING) is queries.Effect.UPDATE:
                if query.name == "stats":
                    del query.effects[queries.READING]
                else:
                    query.effects[queries.READING] = queries.Effect.REFRESH


def bucket_away(now: object) -> int:
    return 15 * 60 * 1000


class WindowBoundaryABucketAway(AppConfig):
    name = "tests.switches"
    label = "tests_window_boundary"

    def ready(self) -> None:
        from stats import services
        from stats.cache import ttl

        for module in (ttl, services):
            module.ms_to_next_bucket = bucket_away
