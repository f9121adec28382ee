from django.apps import AppConfig


class StatsConfig(AppConfig):
    name = "stats"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import atexit

        from . import cache, signals  # noqa: F401 - connects the invalidation receivers

        cache.log_startup()
        # A refresh running when the interpreter exits would be cut off inside a query.
        atexit.register(cache.ahead.refresher.stop)
