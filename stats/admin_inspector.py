"""The Django admin's cache inspector: `dashboard:*` keys by organization and query type, with
TTL, size and value; delete one key or invalidate an organization; hit/miss/error counters.

Read-only for staff who may view organizations; changing the cache needs
`stats.change_organization` (the same permission as the "Invalidate dashboard cache" action).
Every Redis access goes through `stats.cache`, so a dead Redis shows as "unavailable" here.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from prometheus_client import REGISTRY

from . import cache, services
from .models import Organization

INSPECTOR_URL_NAME = "stats_cache_inspector"
UNKNOWN_ORG = "(unknown organization)"


@dataclass(frozen=True)
class CacheEntry:
    key: cache.CacheKey
    query_type: str
    unit_id: str | None
    ttl: int | None
    size: int
    value: str  # pretty-printed JSON, or the raw text when it is not JSON


@dataclass
class OrgGroup:
    org_id: str
    name: str
    by_query_type: dict[str, list[CacheEntry]] = field(default_factory=dict)

    @property
    def key_count(self) -> int:
        return sum(len(entries) for entries in self.by_query_type.values())


@dataclass(frozen=True)
class QueryTypeCounts:
    query_type: str
    hits: float
    misses: float

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return 100.0 * self.hits / total if total else None


def _pretty(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def cache_entry_read(*, key: cache.CacheKey) -> CacheEntry | None:
    """One key's TTL, size and value through stats.cache; None when it expired meanwhile."""
    raw = cache.get(key)
    if raw is None:
        return None
    return CacheEntry(
        key=key,
        query_type=key.query_type,
        unit_id=key.unit_id,
        ttl=cache.ttl_of(key),
        size=len(raw),
        value=_pretty(raw),
    )


def cache_groups_read() -> list[OrgGroup] | None:
    """Cached dashboard keys grouped by organization, then query type; None when Redis fails."""
    keys = cache.scan_keys()
    if keys is None:
        return None
    parsed = [key for raw in keys if (key := cache.parse_dashboard_key(raw)) is not None]
    entries = [entry for key in parsed if (entry := cache_entry_read(key=key)) is not None]
    org_ids = {entry.key.org_id for entry in entries}
    names = {
        str(org_id): name
        for org_id, name in Organization.objects.filter(id__in=[o for o in org_ids if _is_uuid(o)]).values_list(
            "id", "name"
        )
    }
    grouped: dict[str, dict[str, list[CacheEntry]]] = defaultdict(lambda: defaultdict(list))
    for entry in entries:
        grouped[entry.key.org_id or ""][entry.query_type].append(entry)
    groups = [
        OrgGroup(org_id=org_id, name=names.get(org_id, UNKNOWN_ORG), by_query_type=dict(sorted(kinds.items())))
        for org_id, kinds in grouped.items()
    ]
    return sorted(groups, key=lambda group: (group.name, group.org_id))


def _is_uuid(value: str | None) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _samples(metric_name: str, label: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == metric_name and label in sample.labels:
                values[sample.labels[label]] = values.get(sample.labels[label], 0.0) + sample.value
    return values


def cache_counters_read() -> tuple[list[QueryTypeCounts], dict[str, float]]:
    """Hits and misses by query type, errors by operation, from this process's registry."""
    hits = _samples("dashboard_cache_hit_total", "query_type")
    misses = _samples("dashboard_cache_miss_total", "query_type")
    by_type = [
        QueryTypeCounts(query_type=name, hits=hits.get(name, 0.0), misses=misses.get(name, 0.0))
        for name in sorted(set(hits) | set(misses))
    ]
    return by_type, dict(sorted(_samples("dashboard_cache_error_total", "operation").items()))


def _dashboard_key(raw: str) -> cache.CacheKey | None:
    """`raw` if it is a well-formed dashboard key (so the form cannot delete sessions etc.)."""
    return cache.parse_dashboard_key(raw)


class CacheInspectorMixin:
    """Adds `<organization changelist>/cache/` to a ModelAdmin of Organization."""

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.cache_inspector_view)  # type: ignore[attr-defined]
        return [path("cache/", view, name=INSPECTOR_URL_NAME), *super().get_urls()]  # type: ignore[misc]

    def cache_inspector_view(self, request: HttpRequest) -> HttpResponse:
        model_admin: admin.ModelAdmin = self  # type: ignore[assignment]
        if not model_admin.has_view_or_change_permission(request):
            raise PermissionDenied
        can_change = model_admin.has_change_permission(request)
        if request.method == "POST":
            if not can_change:
                raise PermissionDenied
            return self._cache_inspector_post(request)
        if request.method != "GET":
            return HttpResponse(status=405)
        counters, errors = cache_counters_read()
        context = {
            **model_admin.admin_site.each_context(request),
            "title": "Dashboard cache",
            "opts": model_admin.model._meta,
            "groups": cache_groups_read(),
            "counters": counters,
            "errors": errors,
            "can_change": can_change,
            "ttl_seconds": cache.ttl_seconds(),
            "cache_enabled": cache.is_enabled(),
        }
        return TemplateResponse(request, "admin/stats/cache_inspector.html", context)

    def _cache_inspector_post(self, request: HttpRequest) -> HttpResponse:
        model_admin: admin.ModelAdmin = self  # type: ignore[assignment]
        action = request.POST.get("action")
        if action == "delete_key":
            key = _dashboard_key(request.POST.get("key", ""))
            if key is None:
                return HttpResponseBadRequest("not a dashboard cache key")
            if cache.delete(key):
                model_admin.message_user(request, f"Deleted {key}")
            else:
                model_admin.message_user(request, f"Redis unavailable: {key} not deleted", messages.ERROR)
        elif action == "invalidate_org":
            try:
                org_id = uuid.UUID(request.POST.get("org_id", ""))
            except ValueError:
                return HttpResponseBadRequest("org_id must be a UUID")
            org = Organization.objects.filter(id=org_id).first()
            label = org.name if org else str(org_id)
            deleted = services.org_invalidate(org_id=org_id, sweep=True)
            if deleted is None:
                model_admin.message_user(request, f"Redis unavailable: {label} not invalidated", messages.ERROR)
            else:
                model_admin.message_user(request, f"Invalidated {label}: {deleted} key(s) deleted")
        else:
            return HttpResponseBadRequest("unknown action")
        return redirect(reverse(f"{model_admin.admin_site.name}:{INSPECTOR_URL_NAME}"))
