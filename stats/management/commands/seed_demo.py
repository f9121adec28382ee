"""Demo data for local use: organizations, units, devices, a day of readings, alerts, users.

Idempotent: organizations, users and devices are matched by slug/username/dev_eui, and readings
sit on a 5-minute grid with deterministic uplink ids, so a second run only adds what is missing.
"""

from __future__ import annotations

import math
import os
import random
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from stats import services
from stats.models import (
    Alert,
    AlertStatus,
    Device,
    Membership,
    Organization,
    Role,
    Site,
    TemperatureReading,
    Unit,
    UnitStatus,
    UnitType,
)

READING_INTERVAL = timedelta(minutes=5)
RANGES = {UnitType.FRIDGE: (2.0, 8.0), UnitType.FREEZER: (-25.0, -15.0), UnitType.COLD_ROOM: (0.0, 5.0)}
ORG_NAMES = ["Harbour Bistro", "Northside Pharmacy", "Riverside Labs", "Old Town Bakery", "Summit Clinic"]


def dev_eui_for(org_index: int, unit_index: int) -> str:
    return f"70B3D57E{org_index:04X}{unit_index:04X}"


class Command(BaseCommand):
    help = "Create demo organizations, units, devices, readings, alerts and the demo/admin users."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--orgs", type=int, default=3)
        parser.add_argument("--units", type=int, default=6, help="units per organization")
        parser.add_argument("--days", type=float, default=1.0, help="days of readings per unit")

    def handle(self, *args: object, orgs: int, units: int, days: float, **options: object) -> None:
        if orgs < 2:
            self.stderr.write("--orgs must be at least 2 (the demo user is kept out of the last one)")
            raise SystemExit(2)
        rng = random.Random(42)
        now = timezone.now().replace(second=0, microsecond=0)
        now -= timedelta(minutes=now.minute % 5)
        with transaction.atomic():
            demo, admin = self._users()
            created_orgs = [self._organization(i, units, days, now, rng) for i in range(orgs)]
            for i, org in enumerate(created_orgs[:-1]):
                role = Role.OWNER if i == 0 else Role.MANAGER
                Membership.objects.get_or_create(user=demo, organization=org, defaults={"role": role})
            Membership.objects.get_or_create(user=admin, organization=created_orgs[-1], defaults={"role": Role.OWNER})
        for org in created_orgs:
            services.org_invalidate(org_id=org.id)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {orgs} organizations x {units} units, {days:g} day(s) of readings. "
                "Users: demo (member of all but the last organization), admin (staff superuser)."
            )
        )

    def _users(self):
        User = get_user_model()
        demo, created = User.objects.get_or_create(username="demo", defaults={"email": "demo@example.com"})
        if created:
            demo.set_password(os.environ.get("DEMO_PASSWORD", "demo"))
            demo.save()
        admin, created = User.objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True}
        )
        if created:
            admin.set_password(os.environ.get("ADMIN_PASSWORD", "admin"))
            admin.save()
        return demo, admin

    def _organization(self, index: int, unit_count: int, days: float, now, rng: random.Random) -> Organization:
        name = ORG_NAMES[index] if index < len(ORG_NAMES) else f"Demo Organization {index + 1}"
        org, _ = Organization.objects.get_or_create(slug=f"demo-{index + 1}", defaults={"name": name})
        sites = [Site.objects.get_or_create(organization=org, name=n)[0] for n in ("Kitchen", "Storage")]
        types = [UnitType.FRIDGE, UnitType.FREEZER, UnitType.COLD_ROOM]
        for u in range(unit_count):
            unit_type = types[u % len(types)]
            low, high = RANGES[unit_type]
            unit, _ = Unit.objects.get_or_create(
                organization=org,
                name=f"{unit_type.label} {u + 1}",
                defaults={"site": sites[u % 2], "unit_type": unit_type, "temp_min": low, "temp_max": high},
            )
            device, _ = Device.objects.get_or_create(
                dev_eui=dev_eui_for(index, u), defaults={"organization": org, "unit": unit}
            )
            # The second unit of every organization is out of range now, so alerts show up.
            excursion = u == 1
            last = self._readings(unit, device, days, now, rng, excursion)
            self._state(unit, device, last, now, excursion)
        return org

    def _readings(self, unit: Unit, device: Device, days: float, now, rng, excursion: bool) -> float:
        centre = (unit.temp_min + unit.temp_max) / 2
        swing = (unit.temp_max - unit.temp_min) / 4
        steps = int(timedelta(days=days) / READING_INTERVAL)
        rows = []
        temperature = centre
        for step in range(steps, -1, -1):
            at = now - step * READING_INTERVAL
            temperature = centre + swing * math.sin(at.timestamp() / 5400) + rng.uniform(-0.3, 0.3)
            if excursion and step < 4:
                temperature = unit.temp_max + 2.5 + rng.uniform(0, 0.5)
            rows.append(
                TemperatureReading(
                    unit=unit,
                    device=device,
                    organization_id=unit.organization_id,
                    temperature=round(temperature, 2),
                    humidity=round(rng.uniform(40, 70), 1),
                    battery_volts=3.6,
                    rssi=-rng.randint(60, 110),
                    recorded_at=at,
                    received_at=at,
                    uplink_id=f"seed-{device.dev_eui}-{int(at.timestamp())}",
                )
            )
        TemperatureReading.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
        return round(temperature, 2)

    def _state(self, unit: Unit, device: Device, last: float, now, excursion: bool) -> None:
        unit.last_temperature = last
        unit.last_reading_at = now
        # As the webhook leaves it: the next uplink's reading then follows this one, and the cached
        # trend and compliance take it in place (a reading whose predecessor they cannot tell is
        # recomputed from the database instead).
        unit.latest_reading_id = unit.readings.order_by("-id").values_list("id", flat=True).first()
        if excursion:
            unit.status = UnitStatus.EXCURSION
            unit.excursion_started_at = now - 3 * READING_INTERVAL
            if not unit.alerts.exclude(status=AlertStatus.RESOLVED).exists():
                Alert.objects.create(
                    organization_id=unit.organization_id,
                    unit=unit,
                    trigger_temperature=last,
                    threshold_violated=Alert.Threshold.MAX,
                    triggered_at=unit.excursion_started_at,
                )
        else:
            unit.status = UnitStatus.OK
        if not unit.alerts.filter(status=AlertStatus.RESOLVED).exists():
            Alert.objects.create(
                organization_id=unit.organization_id,
                unit=unit,
                status=AlertStatus.RESOLVED,
                trigger_temperature=unit.temp_max + 1,
                threshold_violated=Alert.Threshold.MAX,
                triggered_at=now - timedelta(hours=6),
                resolved_at=now - timedelta(hours=5),
            )
        unit.save()
        device.last_seen_at = now
        device.online = True
        device.battery_volts = 3.6
        device.save()
