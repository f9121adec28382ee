"""An operator resolving an alert while an uplink of its unit is being applied: both succeed.

The uplink locks its device and unit, then the unit's open alert; resolving locks the unit
before the alert too. (Alert first, then unit, waited for the uplink while holding what the
uplink waited for: PostgreSQL aborted one of the two after `deadlock_timeout`.) The uplink is
held between its two locks until the resolve is seen waiting in `pg_stat_activity`.

Row locks are PostgreSQL's: when the suite runs on SQLite (no `DATABASE_URL`), the test runs
itself in a child pytest against the machine's PostgreSQL (`PG_URL`), in a database of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from realtime import ingest, unit_state
from realtime.alerts import alert_resolve
from realtime.ttn import parse_envelope
from stats.models import Alert, AlertStatus, TemperatureReading, UnitStatus
from tests import factories
from tests.realtime.conftest import uplink

pytestmark = pytest.mark.django_db(transaction=True)
WAIT_SECONDS = 10
PG_URL = "postgres://postgres@127.0.0.1:5432/test"


def _backends_waiting_for_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0]


def test_resolving_an_alert_while_an_uplink_of_its_unit_applies_does_not_deadlock(monkeypatch):
    if connection.vendor != "postgresql":
        _on_postgresql()
        return
    org = factories.organization()
    unit = factories.unit(org, status=UnitStatus.EXCURSION, excursion_started_at=timezone.now())
    device = factories.device(unit)
    alert = factories.alert(unit)
    operator = factories.member(org)

    unit_locked, go_on = threading.Event(), threading.Event()
    unresolved_alert = unit_state._unresolved_alert

    def held_between_its_locks(locked_unit):
        unit_locked.set()
        assert go_on.wait(WAIT_SECONDS)
        return unresolved_alert(locked_unit)

    monkeypatch.setattr(unit_state, "_unresolved_alert", held_between_its_locks)
    errors: list[BaseException] = []

    def run(action) -> None:
        try:
            action()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    body = uplink(device.dev_eui, unit.temp_max + 3)
    uplinker = threading.Thread(target=run, args=(lambda: ingest.ingest_uplink(org=org, envelope=_parsed(body)),))
    resolver = threading.Thread(
        target=run, args=(lambda: alert_resolve(org_id=org.id, alert_id=alert.id, user_id=operator.id),)
    )
    uplinker.start()
    assert unit_locked.wait(WAIT_SECONDS)
    resolver.start()
    deadline = time.monotonic() + WAIT_SECONDS
    while _backends_waiting_for_a_lock() < 1:  # the resolve is blocked behind the uplink
        assert time.monotonic() < deadline, "the resolve never waited for the uplink's locks"
        time.sleep(0.01)
    go_on.set()
    uplinker.join(WAIT_SECONDS)
    resolver.join(WAIT_SECONDS)

    assert not uplinker.is_alive() and not resolver.is_alive()
    assert errors == []
    assert TemperatureReading.objects.filter(device=device).count() == 1
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED
    assert Alert.objects.filter(unit=unit).count() == 1  # the uplink found the open alert, made none


def _parsed(body: dict):
    return parse_envelope(json.dumps(body).encode())


def _on_postgresql() -> None:
    env = {**os.environ, "DATABASE_URL": PG_URL, "TEST_DATABASE_NAME": "test_alert_lock_order"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::{_this_test()}"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout


def _this_test() -> str:
    return test_resolving_an_alert_while_an_uplink_of_its_unit_applies_does_not_deadlock.__name__
