from django.apps import AppConfig


class StatsConfig(AppConfig):
    name = "stats"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import cache, signals  # noqa: F401 - connects the invalidation receivers

        cache.log_startup()
