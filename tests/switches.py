"""Test-only switches that turn one mechanism off in a server the tests start, to show that the
test watching it fails without it (`DJANGO_SETTINGS_MODULE=tests.settings_without_updates`)."""

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
