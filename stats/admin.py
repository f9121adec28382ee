from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.db import models, transaction
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from . import services
from .admin_inspector import CacheInspectorMixin
from .models import Alert, Membership, Organization, Site, TemperatureReading, Unit
from .signals import organization_edited

# The admin index links the cache inspector (see admin_inspector), not only the organizations list.
admin.site.index_template = "admin/stats/index.html"


class AnnouncingAdmin(admin.ModelAdmin):
    """An edit or deletion made here changes what dashboards show in a way no event describes
    (a unit's thresholds or name, a device moved, a reading deleted): once it commits, every
    organization it touched (the one it left, when moved) is told through `organization_edited`,
    which invalidates all of the organization's keys and asks its open dashboards to resync."""

    def _field(self) -> str:
        return "pk" if self.model is Organization else "organization_id"

    def _organizations(self, queryset: QuerySet) -> set[uuid.UUID]:
        return set(queryset.order_by().values_list(self._field(), flat=True).distinct())

    def _announce(self, org_ids: set[uuid.UUID]) -> None:
        if org_ids:
            ids = sorted(org_ids, key=str)
            transaction.on_commit(lambda: organization_edited.send(sender=self.model, org_ids=ids))

    def save_model(self, request: HttpRequest, obj: models.Model, form: ModelForm, change: bool) -> None:
        before = self._organizations(self.model._default_manager.filter(pk=obj.pk)) if change else set()
        super().save_model(request, obj, form, change)
        self._announce(before | {getattr(obj, self._field())})

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        org_ids = self._organizations(self.model._default_manager.filter(pk=obj.pk))
        super().delete_model(request, obj)
        self._announce(org_ids)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        org_ids = self._organizations(queryset)
        super().delete_queryset(request, queryset)
        self._announce(org_ids)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(CacheInspectorMixin, AnnouncingAdmin):
    list_display = ["name", "slug", "timezone", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    exclude = ["webhook_secret"]
    inlines = [MembershipInline]
    actions = ["invalidate_cache"]

    @admin.action(description="Invalidate dashboard cache", permissions=["change"])
    def invalidate_cache(self, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
        total = 0
        for org in queryset:
            deleted = services.org_invalidate(org_id=org.id, sweep=True)
            if deleted is None:
                self.message_user(request, f"Redis unavailable: {org} not invalidated", messages.ERROR)
                return
            total += deleted
        self.message_user(request, f"Invalidated {queryset.count()} organization(s), {total} key(s) deleted")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role"]
    list_filter = ["role", "organization"]


@admin.register(Site)
class SiteAdmin(AnnouncingAdmin):
    list_display = ["name", "organization"]
    list_filter = ["organization"]


@admin.register(Unit)
class UnitAdmin(AnnouncingAdmin):
    list_display = ["name", "organization", "site", "unit_type", "status", "last_temperature", "last_reading_at"]
    list_filter = ["status", "unit_type", "organization"]
    search_fields = ["name"]


@admin.register(TemperatureReading)
class TemperatureReadingAdmin(AnnouncingAdmin):
    list_display = ["unit", "temperature", "recorded_at", "received_at", "device", "source"]
    list_filter = ["organization"]
    date_hierarchy = "recorded_at"
    raw_id_fields = ["unit", "device"]
    show_full_result_count = False


@admin.register(Alert)
class AlertAdmin(AnnouncingAdmin):
    list_display = ["unit", "organization", "severity", "status", "trigger_temperature", "triggered_at"]
    list_filter = ["status", "severity", "organization"]
    raw_id_fields = ["unit", "acknowledged_by", "resolved_by"]
