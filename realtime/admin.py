"""The sensors' side of the admin: devices (model, temperature override, probe fault, last raw
payload), uplinks kept for later, and devices The Things Stack reports that nobody registered."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from stats.admin import AnnouncingAdmin
from stats.models import Device, KeptUplink, UnclaimedDevice

from .reprocess import reprocess_one
from .ttn import catalogue
from .ttn.paths import PathError, compile_path


def _pretty(value: object) -> str:
    if value is None:
        return "–"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


class DeviceForm(forms.ModelForm):
    class Meta:
        model = Device
        fields = "__all__"

    def clean_temperature_path(self) -> str:
        path = self.cleaned_data["temperature_path"].strip()
        if path:
            try:
                compile_path(path)
            except PathError as exc:
                raise forms.ValidationError(f"not a payload path: {exc}") from None
        return path


@admin.register(Device)
class DeviceAdmin(AnnouncingAdmin):
    form = DeviceForm
    list_display = [
        "dev_eui", "organization", "unit", "model_name", "online", "probe_fault", "last_source", "last_seen_at",
    ]  # fmt: skip
    list_filter = ["online", "organization", "brand_id"]
    search_fields = ["dev_eui", "model_id"]
    readonly_fields = [
        "online", "last_seen_at", "battery_percent", "battery_volts", "rssi", "catalogued", "last_source",
        "payload", "probe_fault", "probe_fault_since",
    ]  # fmt: skip
    fieldsets = [
        (None, {"fields": ["organization", "unit", "dev_eui"]}),
        (
            "Model and temperature",
            {
                "fields": ["brand_id", "model_id", "catalogued", "temperature_path", "temperature_unit"],
                "description": (
                    "The model comes from the uplinks' version_ids; set it for a device registered "
                    "without one. The override (a path in the decoded payload, and its unit) comes "
                    "before every other source: use it for a custom decoder, or to choose the probe of "
                    "a multi-probe sensor. Leave the unit blank when the value carries its own "
                    '({value, unit} objects, "4.1 °C"). See docs/sensors.md.'
                ),
            },
        ),
        ("Last heard", {"fields": ["online", "last_seen_at", "rssi", "battery_percent", "battery_volts"]}),
        ("Last uplink", {"fields": ["last_source", "probe_fault", "probe_fault_since", "payload"]}),
    ]

    @admin.display(description="model", ordering="model_id")
    def model_name(self, device: Device) -> str:
        return f"{device.brand_id}/{device.model_id}" if device.model_id else "–"

    @admin.display(description="in the catalogue")
    def catalogued(self, device: Device) -> str:
        model = catalogue.lookup(device.brand_id, device.model_id)
        if model is None:
            return "no: only the override or the generic keys can read it" if device.model_id else "–"
        where = model.temperature or " or ".join(model.channels) or model.readings.path  # type: ignore[union-attr]
        return f"{model.name}: {where} ({model.unit or 'unit in the value'})"

    @admin.display(description="last raw payload")
    def payload(self, device: Device) -> str:
        return _pretty(device.last_payload)

    def save_model(self, request: HttpRequest, obj: Device, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Registered: no longer unclaimed. Its kept uplinks wait for `reprocess_uplinks`.
        UnclaimedDevice.objects.filter(dev_eui=obj.dev_eui).delete()


class ReceivedAdmin(admin.ModelAdmin):
    """What arrived from The Things Stack: read-only rows, named by their device's model."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="model", ordering="model_id")
    def model_name(self, received: KeptUplink | UnclaimedDevice) -> str:
        return f"{received.brand_id}/{received.model_id}" if received.model_id else "–"


@admin.register(KeptUplink)
class KeptUplinkAdmin(ReceivedAdmin):
    list_display = ["received_at", "dev_eui", "organization", "outcome", "model_name", "reason"]
    list_filter = ["outcome", "organization", "brand_id"]
    search_fields = ["dev_eui", "model_id", "reason"]
    readonly_fields = ["organization", "dev_eui", "outcome", "reason", "brand_id", "model_id", "received_at", "raw"]
    exclude = ["body"]
    actions = ["reprocess"]
    show_full_result_count = False

    @admin.display(description="uplink as received")
    def raw(self, kept: KeptUplink) -> str:
        return _pretty(kept.body)

    @admin.action(description="Reprocess: store their readings if they can be read now", permissions=["change"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[KeptUplink]) -> None:
        outcomes: dict[str, int] = {}
        for kept_id in queryset.order_by("received_at", "id").values_list("id", flat=True):
            done = reprocess_one(kept_id)
            if done is not None:
                outcomes[done.outcome] = outcomes.get(done.outcome, 0) + 1
        summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items())) or "nothing"
        self.message_user(request, f"Reprocessed: {summary}", messages.INFO)


@admin.register(UnclaimedDevice)
class UnclaimedDeviceAdmin(ReceivedAdmin):
    list_display = ["dev_eui", "organization", "model_name", "uplinks", "first_seen_at", "last_seen_at", "register"]
    list_filter = ["organization", "brand_id"]
    search_fields = ["dev_eui", "model_id"]
    readonly_fields = [
        "organization", "dev_eui", "brand_id", "model_id", "uplinks", "first_seen_at", "last_seen_at", "payload",
    ]  # fmt: skip
    exclude = ["last_payload"]

    @admin.display(description="last decoded payload")
    def payload(self, device: UnclaimedDevice) -> str:
        return _pretty(device.last_payload)

    @admin.display(description="claim")
    def register(self, device: UnclaimedDevice) -> str:
        url = reverse("admin:stats_device_add")
        query = f"dev_eui={device.dev_eui}&organization={device.organization_id}"
        query += f"&brand_id={device.brand_id}&model_id={device.model_id}" if device.model_id else ""
        return format_html('<a href="{}?{}">Register as a device</a>', url, query)
