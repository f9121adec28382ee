from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self) -> None:
        from stats.signals import organization_edited

        from . import broadcast, events

        def announce(sender: type, org_ids: list, **kwargs: object) -> None:
            broadcast.emit([events.org_changed(org_id) for org_id in org_ids])

        organization_edited.connect(announce, weak=False, dispatch_uid="realtime.org_changed")
