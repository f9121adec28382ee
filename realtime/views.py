"""HTTP entry points that change state: the TTN webhook and the alert actions."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from stats.http import json_error, member_required
from stats.models import ALERT_MANAGER_ROLES

from .alerts import AlertActionError, alert_acknowledge, alert_resolve
from .ingest import INGEST, ForeignDevice, ingest_uplink, organization_for_secret
from .ttn import EnvelopeError, parse_envelope

logger = logging.getLogger(__name__)


def _read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The body, or None when it is larger than `limit` (checked before reading it all)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


@csrf_exempt  # TTN authenticates with the per-organization secret, not a browser session
@require_POST
def ttn_webhook(request: HttpRequest) -> HttpResponse:
    secret = request.headers.get("X-Webhook-Secret", "")
    if not secret or len(secret) > 200:
        INGEST.labels("unauthorized").inc()
        return json_error(401, "missing or invalid X-Webhook-Secret")
    body = _read_body(request, settings.WEBHOOK_MAX_BODY_BYTES)
    if body is None:
        INGEST.labels("too_large").inc()
        return json_error(413, f"body larger than {settings.WEBHOOK_MAX_BODY_BYTES} bytes")
    try:
        org = organization_for_secret(secret)
        if org is None:
            INGEST.labels("unauthorized").inc()
            return json_error(401, "missing or invalid X-Webhook-Secret")
        envelope = parse_envelope(body, now=timezone.now())
        result = ingest_uplink(org=org, envelope=envelope)
    except EnvelopeError as exc:
        INGEST.labels(f"rejected_{exc.status}").inc()
        return json_error(exc.status, exc.message, **exc.extra)
    except ForeignDevice as exc:
        INGEST.labels("rejected_403").inc()
        return json_error(403, "device belongs to another organization", devEui=str(exc))
    except (OperationalError, InterfaceError) as exc:
        INGEST.labels("database_unavailable").inc()
        logger.error("Webhook: database unavailable: %s", exc)
        return json_error(503, "database unavailable, retry later")
    # Every outcome of a well-formed uplink is a 2xx: The Things Stack counts anything else as a
    # failure of the webhook, and disables one that fails too often.
    body = {
        "status": result.outcome,
        "readingId": result.reading_ids[-1] if result.reading_ids else None,
        "readings": len(result.reading_ids),
        "source": result.source or None,
        "unitId": result.unit_id,
        "unitStatus": result.unit_status,
        "events": result.events,
    }
    if result.reason:
        body["reason"] = result.reason
    return JsonResponse(body)


def _alert_action(action, request: HttpRequest, org_id: uuid.UUID, alert_id: int) -> HttpResponse:
    if request.org_role not in ALERT_MANAGER_ROLES:  # type: ignore[attr-defined]
        return json_error(403, "only owners, admins and managers may change alerts")
    try:
        alert = action(org_id=org_id, alert_id=alert_id, user_id=request.principal.user_id)  # type: ignore[attr-defined]
    except AlertActionError as exc:
        return json_error(exc.status, exc.message)
    return JsonResponse({"id": alert.id, "status": alert.status, "unitId": str(alert.unit_id)})


@require_POST
@member_required
def acknowledge(request: HttpRequest, org_id: uuid.UUID, alert_id: int) -> HttpResponse:
    return _alert_action(alert_acknowledge, request, org_id, alert_id)


@require_POST
@member_required
def resolve(request: HttpRequest, org_id: uuid.UUID, alert_id: int) -> HttpResponse:
    return _alert_action(alert_resolve, request, org_id, alert_id)
