"""The uplink's hand-written row statements give what the ORM gives, and lock what it locks."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from stats import rows
from stats.models import Device, Unit, UnitStatus
from tests import factories


def _values(instance) -> dict[str, object]:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


@pytest.mark.django_db
def test_the_locked_device_and_unit_equal_the_orms_in_one_query():
    org = factories.organization()
    now = timezone.now().replace(microsecond=123456)
    unit = factories.unit(
        org, status=UnitStatus.EXCURSION, excursion_started_at=now - timedelta(minutes=3), last_temperature=9.5
    )
    device = factories.device(unit)
    Device.objects.filter(pk=device.pk).update(
        last_payload={"decoded_payload": {"TempC_DS": 9.5, "note": "é"}, "f_port": 2},
        probe_fault="probe disconnected",
        probe_fault_since=now,
        battery_volts=3.05,
        rssi=-97,
    )

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        locked = rows.lock_device_with_unit(org_id=org.id, dev_eui=device.dev_eui)
        assert locked.unit.name == unit.name

    assert len(queries.captured_queries) == 1
    expected = Device.objects.select_related("unit").get(pk=device.pk)
    assert _values(locked) == _values(expected)
    assert _values(locked.unit) == _values(expected.unit)
    assert locked.last_payload["decoded_payload"]["note"] == "é"
    assert locked.probe_fault_since == now and locked.probe_fault_since.tzinfo is not None
    assert not locked._state.adding and not locked.unit._state.adding


@pytest.mark.django_db
def test_no_device_is_found_off_the_organizations_units():
    org, other = factories.organization(), factories.organization()
    mine = factories.device(factories.unit(org))
    theirs = factories.device(factories.unit(other))
    unassigned = factories.device(factories.unit(org))
    Device.objects.filter(pk=unassigned.pk).update(unit=None)
    on_their_unit = factories.device(factories.unit(other))
    Device.objects.filter(pk=on_their_unit.pk).update(organization=org)

    with transaction.atomic():
        assert rows.lock_device_with_unit(org_id=org.id, dev_eui=mine.dev_eui).pk == mine.pk
        for device in (theirs, unassigned, on_their_unit):
            assert rows.lock_device_with_unit(org_id=org.id, dev_eui=device.dev_eui) is None
        assert rows.lock_device_with_unit(org_id=org.id, dev_eui="0000000000000000") is None


@pytest.mark.django_db(transaction=True)
def test_the_device_and_its_unit_stay_locked_until_the_transaction_ends():
    if connection.vendor != "postgresql":
        pytest.fail("row locks are PostgreSQL's: run the suite with DATABASE_URL set")
    org = factories.organization()
    unit = factories.unit(org)
    device = factories.device(unit)
    params = connection.get_connection_params()

    def lockable(table: str, pk: object) -> bool:
        with psycopg.connect(**params) as other:
            try:
                other.execute(f'SELECT 1 FROM "{table}" WHERE id = %s FOR UPDATE NOWAIT', [pk])
            except psycopg.errors.LockNotAvailable:
                return False
            return True

    with transaction.atomic():
        rows.lock_device_with_unit(org_id=org.id, dev_eui=device.dev_eui)
        assert not lockable("stats_device", device.pk)
        assert not lockable("stats_unit", unit.pk)
    assert lockable("stats_device", device.pk) and lockable("stats_unit", unit.pk)


@pytest.mark.django_db
def test_save_fields_writes_the_named_fields_only():
    unit = factories.unit(factories.organization())
    unit.status, unit.last_temperature, unit.name = UnitStatus.RESTORING, 4.25, "renamed in memory only"
    unit.restoring_since = timezone.now()

    with CaptureQueriesContext(connection) as queries:
        rows.save_fields(unit, ["status", "last_temperature", "restoring_since"])

    assert len(queries.captured_queries) == 1
    stored = Unit.objects.get(pk=unit.pk)
    assert (stored.status, stored.last_temperature, stored.restoring_since) == (
        UnitStatus.RESTORING, 4.25, unit.restoring_since
    )  # fmt: skip
    assert stored.name != "renamed in memory only"


@pytest.mark.django_db
def test_save_fields_of_a_deleted_row_raises_like_save():
    unit = factories.unit(factories.organization())
    Unit.objects.filter(pk=unit.pk).delete()
    with pytest.raises(DatabaseError):
        rows.save_fields(unit, ["status"])
    with pytest.raises(DatabaseError):
        unit.save(update_fields=["status"])
