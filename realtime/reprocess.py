"""Kept uplinks applied again, oldest first, each stored exactly once."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import transaction

from stats.models import KeptUplink

from .ingest import ForeignDevice, ingest_uplink
from .ttn import EnvelopeError, parse_envelope


@dataclass(frozen=True)
class Reprocessed:
    uplink_id: int
    outcome: str
    reason: str


def reprocess_one(kept_id: int) -> Reprocessed | None:
    """Apply one kept uplink again. Once it stores its readings (or proves a duplicate, a frame
    without temperature, a probe fault) it is deleted in the same transaction, so each kept uplink
    is stored exactly once; otherwise it stays, with the new reason. None when another run holds it.
    """
    with transaction.atomic():
        kept = KeptUplink.objects.select_for_update(skip_locked=True).filter(id=kept_id).first()
        if kept is None:
            return None
        try:
            envelope = parse_envelope(json.dumps(kept.body).encode(), now=kept.received_at)
            result = ingest_uplink(org=kept.organization, envelope=envelope, keep=False)
        except (EnvelopeError, ForeignDevice) as exc:
            kept.delete()  # it can never be stored here
            return Reprocessed(kept_id, "dropped", str(exc))
        if result.outcome in ("unmapped", "unassigned", "unclaimed"):
            kept.outcome, kept.reason = result.outcome, result.reason[:300]
            kept.save(update_fields=["outcome", "reason"])
        else:
            kept.delete()
        return Reprocessed(kept_id, result.outcome, result.reason)
