"""Apply kept uplinks again, oldest first, once staff have added what they lacked."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from realtime.reprocess import reprocess_one
from stats.models import KeptUplink


class Command(BaseCommand):
    help = (
        "Apply uplinks kept because they stored nothing (a model not in the catalogue, a device not registered "
        "or not on a unit), oldest first. Each is stored exactly once and then deleted; the others stay."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", help="only this organization (slug)")
        parser.add_argument("--dev-eui", help="only this device")

    def handle(self, *args: object, org: str | None, dev_eui: str | None, **options: object) -> None:
        kept = KeptUplink.objects.order_by("received_at", "id")
        if org:
            kept = kept.filter(organization__slug=org)
        if dev_eui:
            kept = kept.filter(dev_eui=dev_eui.upper())
        outcomes: dict[str, int] = {}
        for kept_id in kept.values_list("id", flat=True).iterator():
            done = reprocess_one(kept_id)
            if done is None:
                continue  # another run holds it
            outcomes[done.outcome] = outcomes.get(done.outcome, 0) + 1
            if options["verbosity"] > 1:
                self.stdout.write(f"{kept_id}: {done.outcome} {done.reason}")
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())) or "nothing to reprocess"
        self.stdout.write(f"reprocessed: {summary}")
