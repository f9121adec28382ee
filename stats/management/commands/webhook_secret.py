from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from stats.models import Organization, new_webhook_secret


class Command(BaseCommand):
    help = "Print an organization's TTN webhook secret (sent as X-Webhook-Secret), creating it if needed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--rotate", action="store_true", help="replace the secret with a new one")

    def handle(self, *args: object, slug: str, rotate: bool, **options: object) -> None:
        org = Organization.objects.filter(slug=slug).first()
        if org is None:
            raise CommandError(f"no organization with slug {slug!r}")
        if rotate or not org.webhook_secret:
            org.webhook_secret = new_webhook_secret()
            org.save(update_fields=["webhook_secret"])
        self.stdout.write(org.webhook_secret)
