from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from dashboard_project.shutdown import close_process_resources, stop_requested_event
from realtime.devices import devices_sweep
from realtime.uplinks import kept_prune


class Command(BaseCommand):
    help = (
        "Mark devices with no uplink for DEVICE_OFFLINE_AFTER_SECONDS offline, and prune kept uplinks past "
        "KEPT_UPLINK_RETENTION_DAYS / KEPT_UPLINK_MAX_PER_ORG (once, or every N seconds)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--every", type=float, default=None, metavar="N", help="repeat every N seconds")

    def handle(self, *args: object, every: float | None, **options: object) -> None:
        if every is not None and every <= 0:
            raise CommandError("--every must be positive")
        # A sweep in progress finishes (and sends its events) before the command stops.
        with stop_requested_event() as stop:
            try:
                while True:
                    swept = devices_sweep()
                    self.stdout.write(f"sweep: {len(swept)} event(s), {kept_prune()} kept uplink(s) pruned")
                    if every is None or stop.wait(every):
                        return
            finally:
                close_process_resources()
