from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client

from stats.models import AlertStatus, Role, Unit, UnitStatus
from tests import factories


@dataclass
class Dashboard:
    org_a: object
    org_b: object
    units_a: list[Unit]
    unit_b: Unit
    member: object
    client: Client
    outsider_client: Client


@pytest.fixture
def dashboard(db) -> Dashboard:
    """Org A (3 units, readings, alerts) watched by a member; org B with its own member."""
    org_a, org_b = factories.organization("Alpha"), factories.organization("Bravo")
    hot = factories.unit(org_a, status=UnitStatus.EXCURSION, last_temperature=11.0)
    ok = factories.unit(org_a, last_temperature=4.0)
    offline = factories.unit(org_a, status=UnitStatus.OFFLINE)
    for u in (hot, ok, offline):
        factories.device(u, online=u is not offline)
    for t in (3.0, 4.0, 11.0, 5.0):
        factories.reading(ok, t)
    factories.reading(hot, 11.0)
    factories.alert(hot)
    factories.alert(hot, status=AlertStatus.RESOLVED)
    unit_b = factories.unit(org_b, status=UnitStatus.ALARM_ACTIVE, last_temperature=-1.0)
    factories.alert(unit_b, status=AlertStatus.ESCALATED)

    member = factories.member(org_a, role=Role.MANAGER)
    client = Client()
    client.force_login(member)
    outsider = factories.member(org_b)
    outsider_client = Client()
    outsider_client.force_login(outsider)
    return Dashboard(org_a, org_b, [hot, ok, offline], unit_b, member, client, outsider_client)
