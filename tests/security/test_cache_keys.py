"""Cache keys cannot be steered by user input, and nothing cached is personal data (NFR-CACHE-006)."""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

import redis
from django.contrib.auth import get_user_model
from django.test import Client

from stats.models import Unit
from tests import factories
from tests.security.conftest import PERSON_MARKER, World

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
DASHBOARD_KEY = re.compile(
    rf"^dashboard:(units:status|alerts:count|temperature:trends|devices:online|stats):org:({UUID})(:unit:({UUID}))?$"
)
# Bookkeeping of stats/cache.py, the cached principal and the session cache.
META_KEY = re.compile(
    rf"^(dashmeta:(gen:org:{UUID}|idx:org:{UUID}|gen:dashboard:\S+|lock:dashboard:\S+|state:dashboard:\S+)"
    r"|authz:user:\d+|session:2:django\.contrib\.sessions\.cached_db[a-z0-9]{32})$"
)
HOSTILE = [
    "*",
    ":",
    "?",
    "[",
    "]",
    "[a-z]",
    "/",
    "../",
    "..\\",
    "%2F",
    "ü",
    "🧊",
    "\u202e",
    "dashboard:*",
    ":org:*",
    "*:org:*",
    "\x00",
    " ",
    "\\*",
]
CACHED_ROUTES = ["stats", "units/status", "alerts/count", "devices/online", "units/{unit}/trends", "units", "alerts"]


def _all_keys(redis_client: redis.Redis) -> list[str]:
    return sorted(key.decode() for key in redis_client.keys("*"))


def hostile_requests(world: World) -> None:
    client = world.client("manager")
    for junk in HOSTILE:
        q = quote(junk, safe="")
        for route in CACHED_ROUTES:
            for org, unit in ((world.org.id, q), (q, world.unit.id), (q, q), (world.org.id, world.unit.id)):
                path = f"/api/orgs/{org}/" + route.format(unit=unit)
                client.get(path + "?" + urlencode({"unit": junk, "refresh": junk, junk: junk}))
        client.get(f"/api/orgs/{world.org.id}/alerts/count?" + urlencode({"unit": f"{world.unit.id}{junk}"}))
        client.get(f"/orgs/{q}/")
    # Another organization's unit under our organization must not create a key either.
    client.get(f"/api/orgs/{world.org.id}/alerts/count?unit={world.other_unit.id}")
    client.get(f"/api/orgs/{world.org.id}/units/{world.other_unit.id}/trends")
    admin = world.client("superuser")
    for junk in HOSTILE:
        admin.post("/admin/stats/organization/cache/", {"action": "delete_key", "key": junk})
        admin.post("/admin/stats/organization/cache/", {"action": "invalidate_org", "org_id": junk})
        Client().post("/api/webhooks/ttn", b"{}", content_type="application/json", HTTP_X_WEBHOOK_SECRET=junk)


def test_hostile_parameters_only_ever_produce_well_formed_keys_for_real_org_and_unit_ids(world, redis_client):
    hostile_requests(world)
    keys = _all_keys(redis_client)
    dashboard = [key for key in keys if key.startswith("dashboard:")]
    assert dashboard, "the valid requests must have cached something"
    assert [key for key in keys if not DASHBOARD_KEY.match(key) and not META_KEY.match(key)] == []
    units_of = {str(u.id): str(u.organization_id) for u in Unit.objects.all()}
    for key in dashboard:
        match = DASHBOARD_KEY.match(key)
        assert match, key
        org_id, unit_id = match.group(2), match.group(4)
        assert org_id == str(world.org.id), key  # only the member's organization is ever cached
        assert unit_id is None or units_of[unit_id] == org_id, key  # and only its own units


def test_the_inspector_refuses_to_delete_keys_that_are_not_dashboard_keys(world, redis_client):
    redis_client.set("authz:user:999999", b"keep")
    admin = world.client("superuser")
    session_keys = [key for key in _all_keys(redis_client) if key.startswith("session:")]
    assert session_keys
    for key in [
        "authz:user:999999",
        *session_keys,
        "dashboard:*",
        f"dashboard:stats:org:{world.org.id}*",
        f"dashboard:stats:org:{world.org.id}:unit:*",
    ]:
        response = admin.post("/admin/stats/organization/cache/", {"action": "delete_key", "key": key})
        assert response.status_code == 400, key
    assert redis_client.get("authz:user:999999") == b"keep"
    assert all(redis_client.exists(key) for key in session_keys)


def exercise_every_cached_endpoint(world: World) -> None:
    """Every member and admin reads every cached value, after alert actions that record a person."""
    manager = world.client("manager")
    alert = world.unit.alerts.first()
    # An acknowledged alert carries acknowledged_by: a person the cached values must not name.
    manager.post(f"/api/orgs/{world.org.id}/alerts/{alert.id}/acknowledge")
    resolved = factories.alert(world.unit)
    manager.post(f"/api/orgs/{world.org.id}/alerts/{resolved.id}/resolve")
    for role in ("viewer", "manager"):
        client = world.client(role)
        for route in CACHED_ROUTES:
            assert client.get(f"/api/orgs/{world.org.id}/" + route.format(unit=world.unit.id)).status_code == 200
        assert client.get(f"/api/orgs/{world.org.id}/alerts/count?unit={world.unit.id}").status_code == 200
        assert client.get("/api/orgs/").status_code == 200
        assert client.get(f"/orgs/{world.org.id}/").status_code == 200
    assert world.client("outsider").get(f"/api/orgs/{world.other.id}/stats").status_code == 200
    assert world.client("superuser").get("/admin/stats/organization/cache/").status_code == 200


def personal_strings(world: World, redis_client: redis.Redis) -> list[str]:
    people = get_user_model().objects.all()
    strings = [PERSON_MARKER, PERSON_MARKER.lower(), "@example.test"]
    for person in people:
        strings += [
            person.username,
            person.email,
            person.first_name,
            person.last_name,
            person.password,
            person.password.split("$")[-1],
            person.get_session_auth_hash(),
        ]
    sessions = [key.decode().rsplit("cached_db", 1)[1] for key in redis_client.keys("session:*")]
    assert sessions, "the clients are signed in, so sessions exist"
    return [s for s in strings + sessions if s]


def test_no_cached_dashboard_value_contains_personal_data(world, redis_client):
    exercise_every_cached_endpoint(world)
    keys = [key for key in _all_keys(redis_client) if key.startswith("dashboard:")]
    kinds = {DASHBOARD_KEY.match(key).group(1) for key in keys}
    assert kinds == {"units:status", "alerts:count", "temperature:trends", "devices:online", "stats"}
    forbidden = personal_strings(world, redis_client)
    for key in keys:
        value = redis_client.get(key).decode()
        leaked = [s for s in forbidden if s.lower() in value.lower()]
        assert leaked == [], (key, leaked)
        for person in get_user_model().objects.all():  # no user ids either, in the shapes JSON would carry
            assert f'"acknowledgedBy":{person.pk}' not in value and f'"userId":{person.pk}' not in value


def test_the_cached_principal_holds_no_name_email_or_password_hash(world, redis_client):
    exercise_every_cached_endpoint(world)
    forbidden = [s for s in personal_strings(world, redis_client) if "$" in s or "@" in s or PERSON_MARKER in s]
    principals = [key for key in _all_keys(redis_client) if key.startswith("authz:user:")]
    assert principals
    for key in principals:
        value = redis_client.get(key).decode()
        assert [s for s in forbidden if s in value] == [], key
