"""Uplinks that stored nothing yet: kept raw (bounded by age and count) until staff add what was
missing (a catalogue entry, an override, a device, a unit) and `reprocess_uplinks` applies them;
devices nobody registered, listed for staff to claim."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from stats.models import KeptUplink, Organization, UnclaimedDevice

from .ttn import Envelope


def keep_uplink(org: Organization, envelope: Envelope, outcome: str, reason: str) -> None:
    KeptUplink.objects.create(
        organization=org,
        dev_eui=envelope.dev_eui,
        outcome=outcome,
        reason=reason[:300],
        brand_id=envelope.brand_id or "",
        model_id=envelope.model_id or "",
        received_at=timezone.now(),
        body=envelope.raw,
    )


def note_unclaimed(org: Organization, envelope: Envelope) -> None:
    message = envelope.raw.get("uplink_message")
    payload = message.get("decoded_payload") if isinstance(message, dict) else None
    seen = {"last_seen_at": envelope.received_at, "last_payload": payload}
    if envelope.brand_id and envelope.model_id:
        seen |= {"brand_id": envelope.brand_id, "model_id": envelope.model_id}
    updated = UnclaimedDevice.objects.filter(organization=org, dev_eui=envelope.dev_eui).update(
        uplinks=F("uplinks") + 1, **seen
    )
    if not updated:  # a unique constraint catches a concurrent first sighting (ingest retries)
        UnclaimedDevice.objects.create(
            organization=org, dev_eui=envelope.dev_eui, first_seen_at=envelope.received_at, uplinks=1, **seen
        )


def kept_prune(*, now: datetime | None = None) -> int:
    """Delete kept uplinks past the retention, and each organization's oldest beyond the bound;
    forget unclaimed devices not heard from within the retention. Returns kept uplinks deleted."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.KEPT_UPLINK_RETENTION_DAYS)
    deleted, _ = KeptUplink.objects.filter(received_at__lt=cutoff).delete()
    UnclaimedDevice.objects.filter(last_seen_at__lt=cutoff).delete()
    bound = settings.KEPT_UPLINK_MAX_PER_ORG
    for org_id in KeptUplink.objects.order_by().values_list("organization_id", flat=True).distinct():
        rows = KeptUplink.objects.filter(organization_id=org_id).order_by("-received_at", "-id")
        oldest_kept = rows.values_list("received_at", "id")[bound : bound + 1].first()
        if oldest_kept is not None:
            at, row_id = oldest_kept
            older = rows.filter(received_at__lte=at).exclude(received_at=at, id__gt=row_id)
            deleted += older.delete()[0]
    return deleted
