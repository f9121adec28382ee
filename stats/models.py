"""The cold-chain domain that the dashboard aggregates."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import connections, models
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


def webhook_secret_digest(secret: str) -> str:
    """Lookup key for a webhook secret: an index on the digest leaks nothing about the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Organization(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    timezone = models.CharField(max_length=64, default="UTC")
    webhook_secret = models.CharField(max_length=100, default=new_webhook_secret)
    webhook_secret_sha256 = models.CharField(max_length=64, db_index=True, editable=False, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: object, **kwargs: object) -> None:
        self.webhook_secret_sha256 = webhook_secret_digest(self.webhook_secret)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "webhook_secret" in update_fields:
            kwargs["update_fields"] = {*update_fields, "webhook_secret_sha256"}
        super().save(*args, **kwargs)


class Role(models.TextChoices):
    OWNER = "owner"
    ADMIN = "admin"
    MANAGER = "manager"
    STAFF = "staff"
    VIEWER = "viewer"


# Roles that may acknowledge and resolve alerts.
ALERT_MANAGER_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.MANAGER})


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class Site(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="sites")
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class UnitType(models.TextChoices):
    FRIDGE = "fridge"
    FREEZER = "freezer"
    COLD_ROOM = "cold_room"


class UnitStatus(models.TextChoices):
    OK = "ok"
    EXCURSION = "excursion"
    ALARM_ACTIVE = "alarm_active"
    RESTORING = "restoring"
    OFFLINE = "offline"


class Unit(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Denormalized from site so organization-wide aggregates need no join.
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="units")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="units")
    name = models.CharField(max_length=200)
    unit_type = models.CharField(max_length=16, choices=UnitType.choices, default=UnitType.FRIDGE)
    temp_min = models.FloatField(help_text="°C")
    temp_max = models.FloatField(help_text="°C")
    status = models.CharField(max_length=16, choices=UnitStatus.choices, default=UnitStatus.OK)
    # When the current excursion began: the confirm delay is measured from here.
    excursion_started_at = models.DateTimeField(null=True, blank=True)
    # When the unit came back in range: the stable period of `restoring` is measured from here.
    restoring_since = models.DateTimeField(null=True, blank=True)
    last_reading_at = models.DateTimeField(null=True, blank=True)
    last_temperature = models.FloatField(null=True, blank=True)
    # The id of the unit's reading stored last (whatever its time): a cached figure updated in
    # place from a reading must already hold this one, else it missed an update and is recomputed.
    latest_reading_id = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["organization", "status"])]

    def __str__(self) -> str:
        return self.name


class TemperatureUnit(models.TextChoices):
    CELSIUS = "C", "°C"
    FAHRENHEIT = "F", "°F"
    KELVIN = "K", "K"


class Device(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="devices")
    unit = models.ForeignKey(Unit, on_delete=models.SET_NULL, null=True, blank=True, related_name="devices")
    dev_eui = models.CharField(max_length=16, unique=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    battery_percent = models.FloatField(null=True, blank=True)
    battery_volts = models.FloatField(null=True, blank=True)
    rssi = models.IntegerField(null=True, blank=True)
    online = models.BooleanField(default=False)
    # The model as The Things Stack names it (uplink_message.version_ids), kept from the last uplink
    # that carried it; staff may set it for devices registered without one.
    brand_id = models.CharField(max_length=64, blank=True)
    model_id = models.CharField(max_length=64, blank=True)
    # Staff's override of where the product temperature is (custom decoders, the probe of a
    # multi-probe sensor): a path in the decoded payload, and its unit (blank: the value says).
    temperature_path = models.CharField(
        max_length=200, blank=True, help_text="e.g. temperature_chn2, or messages[?measurementId=4097].measurementValue"
    )
    temperature_unit = models.CharField(max_length=1, choices=TemperatureUnit.choices, blank=True)
    last_source = models.CharField(max_length=100, blank=True)
    last_payload = models.JSONField(null=True, blank=True)
    # Non-empty while the probe reports no usable value (sentinel, open circuit, out of range).
    probe_fault = models.CharField(max_length=200, blank=True)
    probe_fault_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["dev_eui"]
        indexes = [models.Index(fields=["organization", "online"])]

    def __str__(self) -> str:
        return self.dev_eui


class ReadingQuerySet(models.QuerySet):
    def insert_new(self, readings: list[TemperatureReading]) -> list[TemperatureReading]:
        """Insert the readings whose `uplink_id` is not stored yet, in one statement (`ON CONFLICT
        DO NOTHING RETURNING`); returns those, in their order, with their ids set. A check first
        and an insert after cost an uplink two round trips and two compiled queries."""
        opts = self.model._meta
        fields = [field for field in opts.concrete_fields if not field.primary_key]
        query = InsertQuery(self.model, on_conflict=OnConflict.IGNORE)
        query.insert_values(fields, readings)
        ((statement, params),) = query.get_compiler(using=self.db).as_sql()
        connection = connections[self.db]
        returning = ", ".join(connection.ops.quote_name(opts.get_field(name).column) for name in ("id", "uplink_id"))
        with connection.cursor() as cursor:
            cursor.execute(f"{statement} RETURNING {returning}", params)
            ids = {uplink_id: pk for pk, uplink_id in cursor.fetchall()}
        inserted = [reading for reading in readings if reading.uplink_id in ids]
        for reading in inserted:
            reading.pk = ids[reading.uplink_id]
            reading._state.adding, reading._state.db = False, self.db
        return inserted


class TemperatureReading(models.Model):
    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="readings")
    device = models.ForeignKey(Device, on_delete=models.SET_NULL, null=True, related_name="readings")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="readings")
    temperature = models.FloatField()
    humidity = models.FloatField(null=True, blank=True)
    battery_percent = models.FloatField(null=True, blank=True)
    battery_volts = models.FloatField(null=True, blank=True)
    rssi = models.IntegerField(null=True, blank=True)
    recorded_at = models.DateTimeField()
    received_at = models.DateTimeField()
    # Idempotency: TTN retries deliver the same uplink again.
    uplink_id = models.CharField(max_length=200, unique=True)
    # Where the temperature came from: override, normalized, catalogue:<brand>/<model> or generic.
    source = models.CharField(max_length=100, blank=True, db_default="")

    objects = ReadingQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["unit", "recorded_at"]),
            models.Index(fields=["organization", "recorded_at"]),
        ]


class AlertStatus(models.TextChoices):
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


UNRESOLVED_ALERT_STATUSES = (AlertStatus.ACTIVE, AlertStatus.ACKNOWLEDGED, AlertStatus.ESCALATED)


class Alert(models.Model):
    class Type(models.TextChoices):
        TEMPERATURE_EXCURSION = "temperature_excursion"

    class Severity(models.TextChoices):
        WARNING = "warning"
        CRITICAL = "critical"

    class Threshold(models.TextChoices):
        MIN = "min"
        MAX = "max"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="alerts")
    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="alerts")
    alert_type = models.CharField(max_length=32, choices=Type.choices, default=Type.TEMPERATURE_EXCURSION)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.ACTIVE)
    trigger_temperature = models.FloatField()
    threshold_violated = models.CharField(max_length=3, choices=Threshold.choices)
    triggered_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-triggered_at"]
        indexes = [
            models.Index(fields=["organization", "status"]),
            models.Index(fields=["unit", "status"]),
        ]


class KeptUplink(models.Model):
    """An uplink that stored no reading but may later (a model not catalogued yet, a device not
    registered or not assigned to a unit): kept as received, so that once staff add the mapping
    `manage.py reprocess_uplinks` stores its readings. Pruned by age and count (settings)."""

    class Reason(models.TextChoices):
        UNMAPPED = "unmapped"
        UNCLAIMED = "unclaimed"
        UNASSIGNED = "unassigned"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="kept_uplinks")
    dev_eui = models.CharField(max_length=16, db_index=True)
    outcome = models.CharField(max_length=16, choices=Reason.choices)
    reason = models.CharField(max_length=300)
    brand_id = models.CharField(max_length=64, blank=True)
    model_id = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField()  # when this server received it
    body = models.JSONField()

    class Meta:
        ordering = ["received_at", "id"]
        indexes = [models.Index(fields=["organization", "received_at"])]

    def __str__(self) -> str:
        return f"{self.dev_eui} {self.outcome} at {self.received_at:%Y-%m-%d %H:%M:%S}"


class UnclaimedDevice(models.Model):
    """A device The Things Stack sends uplinks for (it sends every device of the application) that
    no one registered here: listed for staff, who register it as a Device to claim it."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="unclaimed_devices")
    dev_eui = models.CharField(max_length=16)
    brand_id = models.CharField(max_length=64, blank=True)
    model_id = models.CharField(max_length=64, blank=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    uplinks = models.PositiveIntegerField(default=0)
    last_payload = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [models.UniqueConstraint(fields=["organization", "dev_eui"], name="uniq_unclaimed_device")]

    def __str__(self) -> str:
        return self.dev_eui
