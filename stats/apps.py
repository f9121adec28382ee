from django.apps import AppConfig


class StatsConfig(AppConfig):
    name = "stats"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import atexit

        from . import cache, queries, signals  # noqa: F401 - connects the invalidation receivers

        cache.log_startup()
        cache.metrics.export_from_the_start(
            [q.name for q in queries.cached()], [q.name for q in queries.cached() if q.updater]
        )
        # A refresh running when the interpreter exits would be cut off inside a query.
        atexit.register(cache.ahead.refresher.stop)
