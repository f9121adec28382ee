"""JSON API for the dashboard: parse, call one service, shape the response."""

from __future__ import annotations

import logging
import time
import uuid

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from . import cache, selectors, services
from .cache import QueryType, cache_key
from .http import json_error, json_raw, member_required, principal_from_request

logger = logging.getLogger(__name__)


@require_GET
def organization_list(request: HttpRequest) -> HttpResponse:
    principal = principal_from_request(request)
    if principal is None:
        return json_error(401, "authentication required")
    return JsonResponse({"organizations": selectors.organizations_for_user(memberships=principal.roles)})


@require_GET
@member_required
def unit_list(request: HttpRequest, org_id: uuid.UUID) -> HttpResponse:
    return JsonResponse({"units": selectors.units_with_devices(org_id=org_id)})


@require_GET
@member_required
def alert_list(request: HttpRequest, org_id: uuid.UUID) -> HttpResponse:
    return JsonResponse({"alerts": selectors.unresolved_alerts(org_id=org_id)})


@require_GET
@member_required(reads=lambda org_id: [cache_key(QueryType.STATS, org_id)], fast_path=True)
def organization_stats(request: HttpRequest, org_id: uuid.UUID) -> HttpResponse:
    refresh = request.GET.get("refresh", "") in {"1", "true"}
    return json_raw(services.org_stats_json(org_id=org_id, refresh=refresh))


@require_GET
@member_required(reads=lambda org_id: [cache_key(QueryType.UNITS_STATUS, org_id)], fast_path=True)
def unit_status(request: HttpRequest, org_id: uuid.UUID) -> HttpResponse:
    return json_raw(services.unit_status_json(org_id=org_id))


@require_GET
@member_required(reads=lambda org_id: [cache_key(QueryType.ALERTS_COUNT, org_id)], fast_path=True)
def alert_counts(request: HttpRequest, org_id: uuid.UUID) -> HttpResponse:
    raw_unit = request.GET.get("unit")
    unit_id = None
    if raw_unit is not None:
        try:
            unit_id = uuid.UUID(raw_unit)
        except ValueError:
            return json_error(400, "unit must be a UUID", field="unit")
    try:
        return json_raw(services.alert_counts_json(org_id=org_id, unit_id=unit_id))
    except services.UnitNotFound:
        return json_error(404, "unit not found")


@require_GET
@member_required(
    reads=lambda org_id, unit_id: [cache_key(QueryType.TEMPERATURE_TRENDS, org_id, unit_id)], fast_path=True
)
def temperature_trends(request: HttpRequest, org_id: uuid.UUID, unit_id: uuid.UUID) -> HttpResponse:
    try:
        return json_raw(services.temperature_trends_json(org_id=org_id, unit_id=unit_id))
    except services.UnitNotFound:
        return json_error(404, "unit not found")


@require_GET
@member_required(reads=lambda org_id: [cache_key(QueryType.DEVICES_ONLINE, org_id)], fast_path=True)
def devices_online(request: HttpRequest, org_id: uuid.UUID) -> HttpResponse:
    return json_raw(services.devices_online_json(org_id=org_id))


def _database_health() -> dict[str, object]:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        ok = True
    except Exception as exc:  # any driver error means "down" here; logged, never raised
        logger.error("Health: database error: %s", exc)
        ok = False
    return {"ok": ok, "latencyMs": round((time.perf_counter() - started) * 1000, 3)}


@require_GET
def health(request: HttpRequest) -> HttpResponse:
    database = _database_health()
    cache_health = cache.health_check() if cache.is_enabled() else {"ok": False, "latencyMs": 0, "enabled": False}
    redis_ok = bool(cache_health["ok"])
    if not database["ok"]:
        status = "unhealthy"
    elif not redis_ok and cache.is_enabled():
        status = "degraded"
    else:
        status = "healthy"
    body = {
        "status": status,
        "services": {
            "database": database,
            "redis": {"ok": redis_ok, "enabled": cache.is_enabled()},
            "cache": cache_health,
        },
    }
    return JsonResponse(body, status=503 if status == "unhealthy" else 200)
