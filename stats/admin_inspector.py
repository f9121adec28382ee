"""The Django admin's cache inspector: each query type's policy from the catalogue; hits, misses and
errors summed over every process of the host; the organizations, searched and paged, each with
its number of cached keys; one organization's keys (through its index) with TTL, size and value;
delete a key, invalidate an organization; find and sweep keys whose organization no longer exists.

Read-only for staff who may view organizations; changing the cache needs
`stats.change_organization` (the same permission as the "Invalidate dashboard cache" action).
Every Redis access goes through `stats.cache`, so a dead Redis shows as "unavailable" here.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from . import cache, queries, services
from .models import Organization

INSPECTOR_URL_NAME = "stats_cache_inspector"
ORGS_PER_PAGE = 25


@dataclass(frozen=True)
class CacheEntry:
    key: cache.CacheKey
    ttl: int | None
    size: int
    value: str  # pretty-printed JSON, or the raw text when it is not JSON


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


def policies() -> list[dict[str, object]]:
    """The catalogue, as the inspector shows it."""
    return [
        {
            "name": query.name,
            "path": query.path,
            "scope": str(query.scope),
            "ttl": query.ttl_seconds(),
            "lead": query.lead_seconds(),
            "fast_path": query.fast_path,
            "effects": [(change.name, str(effect)) for change, effect in query.effects.items()]
            + [(queries.ORG_CHANGED.name, str(queries.Effect.INVALIDATE))],
        }
        for query in queries.cached()
    ]


def org_entries_read(*, org_id: uuid.UUID) -> list[CacheEntry] | None:
    """One organization's cached keys, found through its index, with TTL, size and value."""
    keys = cache.inspect.org_keys(org_id)
    if keys is None:
        return None
    entries = []
    for key in keys:
        raw = cache.get(key)
        if raw is not None:  # expired meanwhile
            entries.append(CacheEntry(key, cache.ttl_of(key), len(raw), _pretty(raw)))
    return entries


def _registry() -> tuple[CollectorRegistry, str]:
    """Every process's metrics when several serve this host (PROMETHEUS_MULTIPROC_DIR), else this
    process's: the inspector's page is served by one of them."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return REGISTRY, "this process"
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry, "every process of this host"


def _samples(registry: CollectorRegistry, metric_name: str, label: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == metric_name and label in sample.labels:
                values[sample.labels[label]] = values.get(sample.labels[label], 0.0) + sample.value
    return values


def cache_counters_read() -> tuple[list[QueryTypeCounts], dict[str, float], str]:
    """Hits and misses by query type, errors by operation, and whose counters they are."""
    registry, scope = _registry()
    hits = _samples(registry, "dashboard_cache_hit_total", "query_type")
    misses = _samples(registry, "dashboard_cache_miss_total", "query_type")
    by_type = [
        QueryTypeCounts(query_type=name, hits=hits.get(name, 0.0), misses=misses.get(name, 0.0))
        for name in sorted(set(hits) | set(misses))
    ]
    return by_type, dict(sorted(_samples(registry, "dashboard_cache_error_total", "operation").items())), scope


def orphans_read() -> list[dict[str, object]] | None:
    """Organizations that have cached keys in Redis and no longer exist in the database."""
    indexed = cache.inspect.indexed_orgs()
    if indexed is None:
        return None
    valid = [org for org in indexed if _is_uuid(org)]
    known = {str(pk) for pk in Organization.objects.filter(id__in=valid).values_list("id", flat=True)}
    gone = [org for org in valid if org not in known]
    counts = cache.inspect.org_key_counts(gone) or {}
    return [{"org_id": org, "keys": counts.get(org, 0)} for org in gone]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


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
        counters, errors, counted_in = cache_counters_read()
        search = request.GET.get("q", "").strip()[:100]
        orgs = Organization.objects.order_by("name", "id")
        if search:
            orgs = orgs.filter(Q(name__icontains=search) | Q(slug__icontains=search))
        page = Paginator(orgs.values("id", "name", "slug"), ORGS_PER_PAGE).get_page(request.GET.get("page"))
        counts = cache.inspect.org_key_counts([str(org["id"]) for org in page])
        selected = self._selected_org(request)
        context = {
            **model_admin.admin_site.each_context(request),
            "title": "Dashboard cache",
            "opts": model_admin.model._meta,
            "policies": policies(),
            "counters": counters,
            "errors": errors,
            "counted_in": counted_in,
            "search": search,
            "page": page,
            "orgs": [{**org, "id": str(org["id"]), "keys": (counts or {}).get(str(org["id"]))} for org in page],
            "redis_down": counts is None,
            "selected": selected,
            "entries": org_entries_read(org_id=selected.id) if selected else None,
            "orphans": orphans_read() if request.GET.get("orphans") else None,
            "can_change": can_change,
            "cache_enabled": cache.is_enabled(),
        }
        return TemplateResponse(request, "admin/stats/cache_inspector.html", context)

    @staticmethod
    def _selected_org(request: HttpRequest) -> Organization | None:
        raw = request.GET.get("org", "")
        return Organization.objects.filter(id=raw).first() if _is_uuid(raw) else None

    def _cache_inspector_post(self, request: HttpRequest) -> HttpResponse:
        model_admin: admin.ModelAdmin = self  # type: ignore[assignment]
        action = request.POST.get("action")
        back = reverse(f"{model_admin.admin_site.name}:{INSPECTOR_URL_NAME}")
        if action == "delete_key":
            key = cache.parse_dashboard_key(request.POST.get("key", ""))
            if key is None:
                return HttpResponseBadRequest("not a dashboard cache key")
            if cache.delete(key):
                model_admin.message_user(request, f"Deleted {key}")
            else:
                model_admin.message_user(request, f"Redis unavailable: {key} not deleted", messages.ERROR)
            return redirect(f"{back}?org={key.org_id}")
        if action in ("invalidate_org", "sweep_orphan"):
            try:
                org_id = uuid.UUID(request.POST.get("org_id", ""))
            except ValueError:
                return HttpResponseBadRequest("org_id must be a UUID")
            org = Organization.objects.filter(id=org_id).first()
            if action == "sweep_orphan" and org is not None:
                return HttpResponseBadRequest("that organization exists: invalidate it instead")
            label = org.name if org else f"orphaned {org_id}"
            deleted = services.org_invalidate(org_id=org_id, sweep=True)
            if deleted is None:
                model_admin.message_user(request, f"Redis unavailable: {label} not invalidated", messages.ERROR)
            else:
                model_admin.message_user(request, f"Invalidated {label}: {deleted} key(s) deleted")
            return redirect(back if org is None else f"{back}?org={org_id}")
        return HttpResponseBadRequest("unknown action")
