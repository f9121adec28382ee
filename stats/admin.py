from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .admin_inspector import CacheInspectorMixin
from .models import Alert, Device, Membership, Organization, Site, TemperatureReading, Unit


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(CacheInspectorMixin, admin.ModelAdmin):
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
class SiteAdmin(admin.ModelAdmin):
    list_display = ["name", "organization"]
    list_filter = ["organization"]


@admin.register(Unit)
class UnitAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "site", "unit_type", "status", "last_temperature", "last_reading_at"]
    list_filter = ["status", "unit_type", "organization"]
    search_fields = ["name"]


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["dev_eui", "organization", "unit", "online", "last_seen_at", "battery", "rssi"]
    list_filter = ["online", "organization"]
    search_fields = ["dev_eui"]


@admin.register(TemperatureReading)
class TemperatureReadingAdmin(admin.ModelAdmin):
    list_display = ["unit", "temperature", "recorded_at", "received_at", "device"]
    list_filter = ["organization"]
    date_hierarchy = "recorded_at"
    raw_id_fields = ["unit", "device"]
    show_full_result_count = False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["unit", "organization", "severity", "status", "trigger_temperature", "triggered_at"]
    list_filter = ["status", "severity", "organization"]
    raw_id_fields = ["unit", "acknowledged_by", "resolved_by"]
