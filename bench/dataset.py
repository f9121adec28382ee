"""The reference dataset: drop and recreate the bench database, migrate, then fill it in SQL.

    .venv/bin/python -m bench.dataset --orgs 200 --units 25 --days 7      # full: ~10M readings

Rows are generated inside PostgreSQL (generate_series), not through the ORM: 10M readings take
minutes this way instead of hours. The readings table's secondary indexes are dropped during the
load and rebuilt after it, and foreign-key triggers are skipped (the generator is consistent by
construction). One user, `bench`, is an owner of every organization.

Each organization, by unit number (1-based, modulo 25 for larger orgs):
  2 excursion (too hot, active alert), 3 alarm_active (too hot, escalated alert),
  4 alarm_active (too cold, acknowledged alert), 5 restoring, 6 offline (device offline);
  the others ok. Plus resolved alerts spread over the period, so every alert state is present.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import uuid

import psycopg

from bench import env

READING_INTERVAL_MINUTES = 5
RESOLVED_ALERTS_PER_ORG = 20
CHUNK_ORGS = 10  # readings are inserted this many organizations at a time (progress, memory)


def recreate_database() -> None:
    with psycopg.connect(env.PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{env.DATABASE_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{env.DATABASE_NAME}"')


def setup_django() -> None:
    os.environ.update(env.server_env())
    os.environ["DJANGO_SETTINGS_MODULE"] = "dashboard_project.settings"
    import django

    django.setup()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def create_user() -> int:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(env.USERNAME, password=env.PASSWORD)
    return int(user.pk)


RANGES = {"fridge": (2.0, 8.0), "freezer": (-25.0, -15.0), "cold_room": (0.0, 5.0)}
# Unit number within each block of 25 -> (status, where last_temperature is, alert status).
SPECIAL_UNITS = {
    2: ("excursion", "hot", "active"),
    3: ("alarm_active", "hot", "escalated"),
    4: ("alarm_active", "cold", "acknowledged"),
    5: ("restoring", "mid", None),
    6: ("offline", "mid", None),
}


def dev_eui(org_idx: int, unit_idx: int) -> str:
    return f"B0B0{org_idx:06X}{unit_idx:06X}"


def create_domain(*, orgs: int, units: int, days: float, user_id: int, now: dt.datetime) -> None:
    """Everything but readings, through the ORM (a few thousand rows; model defaults apply)."""
    from stats.models import Alert, Device, Membership, Organization, Site, Unit

    types = list(RANGES)
    all_units: list[Unit] = []
    devices: list[Device] = []
    alerts: list[Alert] = []
    for o in range(1, orgs + 1):
        org = Organization(name=f"Bench Org {o:03d}", slug=f"bench-{o}", webhook_secret=f"bench-secret-{o}")
        org.save()  # save() derives whatever the model keeps about the secret
        sites = Site.objects.bulk_create([Site(organization=org, name=n) for n in ("Kitchen", "Storage")])
        Membership.objects.create(user_id=user_id, organization=org, role="owner")
        for u in range(1, units + 1):
            unit_type = types[u % 3]
            low, high = RANGES[unit_type]
            status, where, alert_status = SPECIAL_UNITS.get(1 + (u - 1) % 25, ("ok", "mid", None))
            temperature = {"hot": high + 3, "cold": low - 3, "mid": (low + high) / 2}[where]
            seen = now - dt.timedelta(minutes=40) if status == "offline" else now
            unit = Unit(
                id=uuid.uuid4(), organization=org, site=sites[u % 2], name=f"Unit {u:03d}", unit_type=unit_type,
                temp_min=low, temp_max=high, status=status, last_reading_at=seen, last_temperature=temperature,
                excursion_started_at=now - dt.timedelta(minutes=20) if where != "mid" else None,
                restoring_since=now - dt.timedelta(minutes=5) if status == "restoring" else None,
            )  # fmt: skip
            all_units.append(unit)
            devices.append(
                Device(organization=org, unit=unit, dev_eui=dev_eui(o, u), last_seen_at=seen, battery_volts=3.6,
                       rssi=-80, online=status != "offline")
            )  # fmt: skip
            if alert_status:
                alerts.append(
                    Alert(organization=org, unit=unit, severity="warning" if status == "excursion" else "critical",
                          status=alert_status, trigger_temperature=temperature,
                          threshold_violated="min" if where == "cold" else "max",
                          triggered_at=now - dt.timedelta(minutes=20),
                          acknowledged_at=now - dt.timedelta(minutes=10) if alert_status == "acknowledged" else None,
                          acknowledged_by_id=user_id if alert_status == "acknowledged" else None)
                )  # fmt: skip
        for k in range(1, RESOLVED_ALERTS_PER_ORG + 1):
            unit = all_units[-units + k % units]
            at = now - dt.timedelta(days=days) * k / RESOLVED_ALERTS_PER_ORG
            alerts.append(
                Alert(organization=org, unit=unit, status="resolved", trigger_temperature=unit.temp_max + 2,
                      threshold_violated="max", triggered_at=at, acknowledged_at=at + dt.timedelta(minutes=5),
                      acknowledged_by_id=user_id, resolved_at=at + dt.timedelta(minutes=30), resolved_by_id=user_id)
            )  # fmt: skip
    Unit.objects.bulk_create(all_units, batch_size=2000)
    Device.objects.bulk_create(devices, batch_size=2000)
    Alert.objects.bulk_create(alerts, batch_size=2000)


UNITS_SQL = """
CREATE TEMP TABLE bu AS
  SELECT substring(o.slug FROM 7)::int AS org_idx, o.id AS org_id, substring(u.name FROM 6)::int AS unit_idx,
         u.id AS unit_id, u.temp_min AS tmin, u.temp_max AS tmax
  FROM stats_unit u JOIN stats_organization o ON o.id = u.organization_id
"""

# A slow sine per unit (phase from the unit number), noise, and 1 % of readings out of range.
READINGS_SQL = """
INSERT INTO stats_temperaturereading (unit_id, device_id, organization_id, temperature, humidity, battery_volts, rssi,
                                      recorded_at, received_at, uplink_id)
  SELECT bu.unit_id, d.id, bu.org_id,
         round((CASE WHEN random() < 0.01 THEN bu.tmax + 1 + 2 * random()
                     ELSE (bu.tmin + bu.tmax) / 2
                          + (bu.tmax - bu.tmin) / 4 * sin(extract(epoch FROM t.at) / 5400 + bu.unit_idx)
                          + (random() - 0.5) * 0.6 END)::numeric, 2)::float,
         round((40 + 30 * random())::numeric, 1)::float, 3.6, -60 - (random() * 50)::int,
         t.at, t.at, 'bench-' || d.dev_eui || '-' || t.step
  FROM bu
  JOIN stats_device d ON d.unit_id = bu.unit_id
  CROSS JOIN LATERAL (
    SELECT s AS step, %(now)s - s * %(interval)s * interval '1 minute' AS at FROM generate_series(0, %(steps)s) s
  ) t
  WHERE bu.org_idx BETWEEN %(first)s AND %(last)s
"""


def _secondary_indexes(cursor) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(plain indexes, unique constraints) of the readings table, except the primary key."""
    cursor.execute(
        """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = 'stats_temperaturereading'::regclass AND contype = 'u'"""
    )
    constraints = cursor.fetchall()
    cursor.execute(
        """SELECT i.indexname, i.indexdef FROM pg_indexes i
           WHERE i.tablename = 'stats_temperaturereading'
             AND i.indexname NOT IN (SELECT conname FROM pg_constraint
                                     WHERE conrelid = 'stats_temperaturereading'::regclass)"""
    )
    return cursor.fetchall(), constraints


def fill(*, orgs: int, units: int, days: float, user_id: int) -> int:
    from django.db import connection
    from django.utils import timezone

    now = timezone.now().replace(second=0, microsecond=0)
    now -= dt.timedelta(minutes=now.minute % READING_INTERVAL_MINUTES)
    steps = int(days * 24 * 60 / READING_INTERVAL_MINUTES)
    create_domain(orgs=orgs, units=units, days=days, user_id=user_id, now=now)
    params = {"now": now, "interval": READING_INTERVAL_MINUTES}
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SET maintenance_work_mem = '256MB'")
        cursor.execute(UNITS_SQL)
        cursor.execute("SET session_replication_role = replica")  # skip FK triggers during the load
        indexes, constraints = _secondary_indexes(cursor)
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        for name, _ in constraints:
            cursor.execute(f'ALTER TABLE stats_temperaturereading DROP CONSTRAINT "{name}"')
        for first in range(1, orgs + 1, CHUNK_ORGS):
            last = min(orgs, first + CHUNK_ORGS - 1)
            started = time.perf_counter()
            cursor.execute(READINGS_SQL, {**params, "steps": steps, "first": first, "last": last})
            print(f"  readings for orgs {first}-{last}: {time.perf_counter() - started:.1f}s", flush=True)
        started = time.perf_counter()
        for name, definition in constraints:
            cursor.execute(f'ALTER TABLE stats_temperaturereading ADD CONSTRAINT "{name}" {definition}')
        for _, definition in indexes:
            cursor.execute(definition)
        print(f"  indexes rebuilt: {time.perf_counter() - started:.1f}s", flush=True)
        cursor.execute("SET session_replication_role = origin")
        cursor.execute("SELECT count(*) FROM stats_temperaturereading")
        (count,) = cursor.fetchone()
    return int(count)


def vacuum_analyze() -> None:
    with psycopg.connect(env.DATABASE_URL, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        # Write the load's dirty pages now, not during the first measurements.
        conn.execute("CHECKPOINT")


# The scenarios update units, devices and alerts. This machine's PostgreSQL runs with autovacuum
# off (`SHOW autovacuum`), production's does not: without this each scenario measured the dead
# rows the one before left (40k in the 5,000-row unit table after the realistic day).
UPDATED_TABLES = ("stats_unit", "stats_device", "stats_alert")


def vacuum_updated() -> None:
    """VACUUM ANALYZE the tables the scenarios update, then write their dirty pages."""
    with psycopg.connect(env.DATABASE_URL, autocommit=True) as conn:
        for table in UPDATED_TABLES:
            conn.execute(f"VACUUM ANALYZE {table}")
        conn.execute("CHECKPOINT")


def flush_redis() -> None:
    import redis

    for db in (env.REDIS_CACHE_DB, env.REDIS_CHANNELS_DB):
        redis.Redis.from_url(env.REDIS_URL, db=db).flushdb()


def generate(*, orgs: int, units: int, days: float) -> dict[str, object]:
    started = time.perf_counter()
    recreate_database()
    setup_django()
    migrate()
    user_id = create_user()
    fill_started = time.perf_counter()
    readings = fill(orgs=orgs, units=units, days=days, user_id=user_id)
    vacuum_analyze()
    flush_redis()
    summary = {
        "orgs": orgs,
        "unitsPerOrg": units,
        "days": days,
        "readings": readings,
        "fillSeconds": round(time.perf_counter() - fill_started, 1),
        "totalSeconds": round(time.perf_counter() - started, 1),
    }
    print(
        f"dataset: {orgs} orgs x {units} units, {days:g} day(s), {readings:,} readings "
        f"in {summary['totalSeconds']}s (database {env.DATABASE_NAME})",
        flush=True,
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orgs", type=int, default=20)
    parser.add_argument("--units", type=int, default=25, help="units per organization")
    parser.add_argument("--days", type=float, default=1.0, help="days of readings at 5-minute intervals")
    args = parser.parse_args(argv)
    if args.orgs < 1 or args.units < 1 or args.days <= 0:
        parser.error("--orgs and --units must be >= 1 and --days > 0")
    generate(orgs=args.orgs, units=args.units, days=args.days)
    return 0


if __name__ == "__main__":
    sys.exit(main())
