"""One organization seen by every role the access matrix names, with distinctive personal data."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from stats.models import Membership, Organization, Role, Unit
from tests import factories

# Personal data the cache must never hold (NFR-CACHE-006): every role's user carries these markers.
PERSON_MARKER = "Quokkavelt"

ROLES = ("anonymous", "outsider", "viewer", "manager", "staff_bare", "staff_view", "staff_change", "superuser")


@dataclass
class World:
    org: Organization
    other: Organization
    unit: Unit
    other_unit: Unit
    device: object
    other_device: object
    users: dict[str, object]  # role -> user (no entry for anonymous)

    def client(self, role: str, **kwargs: object) -> Client:
        client = Client(**kwargs)
        if role != "anonymous":
            client.force_login(self.users[role])
        return client


def _person(role: str, **extra: object):
    return get_user_model().objects.create_user(
        f"{role}_{PERSON_MARKER.lower()}",
        email=f"{role}.{PERSON_MARKER.lower()}@example.test",
        password=f"pw-{role}",
        first_name=f"Wilhelmina{role.title()}",
        last_name=PERSON_MARKER,
        **extra,
    )


def _permissions(*codenames: str) -> list[Permission]:
    return list(Permission.objects.filter(content_type__app_label="stats", codename__in=codenames))


def build_world() -> World:
    org, other = factories.organization("Polar"), factories.organization("Tundra")
    unit, other_unit = factories.unit(org, name="Walk-in"), factories.unit(other, name="Chest")
    device, other_device = factories.device(unit), factories.device(other_unit)
    factories.reading(unit, 4.0, dev=device)
    factories.alert(unit)
    users = {role: _person(role) for role in ("outsider", "viewer", "manager")}
    users["staff_bare"] = _person("staff_bare", is_staff=True)
    users["staff_view"] = _person("staff_view", is_staff=True)
    users["staff_view"].user_permissions.set(_permissions("view_organization"))
    users["staff_change"] = _person("staff_change", is_staff=True)
    users["staff_change"].user_permissions.set(_permissions("view_organization", "change_organization"))
    users["superuser"] = get_user_model().objects.create_superuser(
        f"superuser_{PERSON_MARKER.lower()}", f"superuser.{PERSON_MARKER.lower()}@example.test", "pw-superuser"
    )
    users["superuser"].first_name, users["superuser"].last_name = "WilhelminaSuperuser", PERSON_MARKER
    users["superuser"].save()
    Membership.objects.create(user=users["outsider"], organization=other, role=Role.OWNER)
    Membership.objects.create(user=users["viewer"], organization=org, role=Role.VIEWER)
    Membership.objects.create(user=users["manager"], organization=org, role=Role.MANAGER)
    return World(org, other, unit, other_unit, device, other_device, users)


@pytest.fixture
def world(db) -> World:
    return build_world()


@pytest.fixture
def live_world(transactional_db) -> World:
    """The same world, committed: async consumers and daphne processes read it from other threads."""
    return build_world()
