"""JSON API for the dashboard: parse, call one service, shape the response."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from . import cache, queries, selectors, services
from .http import json_error, json_raw, member_required, principal_from_request

logger = logging.getLogger(__name__)


@require_GET
def organization_list(request: HttpRequest) -> HttpResponse:
    principal = principal_from_request(request)
    if principal is None:
        return json_error(401, "authentication required")
    return JsonResponse({"organizations": selectors.organizations_for_user(memberships=principal.roles)})


def _unit_param(request: HttpRequest) -> uuid.UUID | None:
    """`?unit=<id>` of a query that is per organization or per unit; ValueError when malformed."""
    raw = request.GET.get("unit")
    return None if raw is None else uuid.UUID(raw)


def query_view(query: queries.Query) -> Callable[..., HttpResponse]:
    """The API view of one catalogue query: the membership check (with the keys it reads fetched
    in the same round trip), then the query's bytes, cached or not as the catalogue says."""

    def reads(org_id: uuid.UUID, unit_id: uuid.UUID | None = None) -> list[cache.CacheKey]:
        return [services.query_key(query, org_id=org_id, unit_id=unit_id)] if query.cached else []

    @require_GET
    @member_required(reads=reads, fast_path=query.fast_path and query.cached)
    def view(request: HttpRequest, org_id: uuid.UUID, unit_id: uuid.UUID | None = None) -> HttpResponse:
        if query.scope is queries.Scope.ORG_OR_UNIT:
            try:
                unit_id = _unit_param(request)
            except ValueError:
                return json_error(400, "unit must be a UUID", field="unit")
        refresh = query.cached and request.GET.get("refresh", "") in {"1", "true"}
        try:
            # ?refresh=1 asks the database itself, not a value rebuilt from its kept state.
            data = services.query_json(
                query.name, org_id=org_id, unit_id=unit_id, refresh=refresh, from_state=not refresh
            )
            return json_raw(data)
        except services.UnitNotFound:
            return json_error(404, "unit not found")

    view.__name__ = view.__qualname__ = f"query_{query.name.replace(':', '_')}"
    return view


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
