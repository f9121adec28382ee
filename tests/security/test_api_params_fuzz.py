"""Hostile path and query parameters on every GET API route: never a 500, always a JSON error."""

from __future__ import annotations

import uuid
from urllib.parse import quote, urlencode

from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.security.conftest import World

FUZZ = hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True
)

# Route templates; {org} and {unit} are replaced by fuzzed segments.
GET_ROUTES = [
    "/api/orgs/",
    "/api/orgs/{org}/units",
    "/api/orgs/{org}/stats",
    "/api/orgs/{org}/units/status",
    "/api/orgs/{org}/alerts",
    "/api/orgs/{org}/alerts/count",
    "/api/orgs/{org}/units/{unit}/trends",
    "/api/orgs/{org}/devices/online",
]
JUNK = [
    "*",
    ":",
    "?",
    "[",
    "]",
    "..",
    "../..",
    "/",
    "\\",
    "%00",
    "ü",
    "🧊",
    "dashboard:*",
    "org:*",
    "' OR '1'='1",
    "x" * 5000,
    "1" * 400,
    "-1",
    "0",
    "null",
    "{}",
    "00000000-0000-0000-0000-00000000000g",
    " " + "0" * 36,
]


def segments(world: World) -> st.SearchStrategy[str]:
    known = [str(world.org.id), str(world.other.id), str(world.unit.id), str(world.other_unit.id)]
    return (
        st.sampled_from(known + JUNK)
        | st.uuids().map(str)
        | st.uuids().map(lambda u: str(u).upper())
        | st.uuids().map(lambda u: u.hex)  # 32 hex digits: a UUID to uuid.UUID, not to the URL converter
        | st.text(max_size=60)
    )


def query_values() -> st.SearchStrategy[str]:
    return (
        st.sampled_from(["1", "true", "0", "", "yes", "TRUE", "2" * 500] + JUNK)
        | st.uuids().map(str)
        | st.text(max_size=80)
    )


def get_and_check(client: Client, path: str, params: dict[str, str]) -> int:
    url = path + ("?" + urlencode(params) if params else "")
    response = client.get(url)
    assert response.status_code < 500, url
    assert response.status_code in (200, 301, 400, 401, 404), (response.status_code, url)
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/json", url
        assert isinstance(response.json()["error"], str)
    return response.status_code


@FUZZ
@given(data=st.data())
def test_every_get_route_answers_junk_path_and_query_parameters_with_json_and_no_500(world, data):
    client = world.client("manager")
    route = data.draw(st.sampled_from(GET_ROUTES))
    org, unit = data.draw(segments(world)), data.draw(segments(world))
    params = data.draw(
        st.dictionaries(
            st.sampled_from(["unit", "refresh", "org", "page", "*", "unit[]"]) | st.text(max_size=10),
            query_values(),
            max_size=3,
        )
    )
    path = route.format(org=quote(org, safe=""), unit=quote(unit, safe=""))
    status = get_and_check(client, path, params)
    if route != "/api/orgs/" and org != str(world.org.id):
        assert status in (301, 404), path  # only the member's own organization is ever served


@FUZZ
@given(unit=st.text(max_size=60) | st.sampled_from(JUNK) | st.uuids().map(str))
def test_alert_count_unit_filter_accepts_only_units_of_the_organization(world, unit):
    status = get_and_check(world.client("manager"), f"/api/orgs/{world.org.id}/alerts/count", {"unit": unit})
    try:
        parsed = uuid.UUID(unit)
    except ValueError:
        assert status == 400
    else:
        assert status == (200 if parsed == world.unit.id else 404)


def test_unknown_ids_and_another_organizations_unit_are_404(world):
    client = world.client("manager")
    unknown = uuid.uuid4()
    for path in (
        f"/api/orgs/{unknown}/stats",
        f"/api/orgs/{world.other.id}/stats",
        f"/api/orgs/{world.org.id}/units/{unknown}/trends",
        f"/api/orgs/{world.org.id}/units/{world.other_unit.id}/trends",
    ):
        assert get_and_check(client, path, {}) == 404, path
    assert get_and_check(client, f"/api/orgs/{world.org.id}/alerts/count", {"unit": str(world.other_unit.id)}) == 404


def test_repeated_and_array_style_query_parameters_do_not_500(world):
    client = world.client("manager")
    base = f"/api/orgs/{world.org.id}"
    for query in (
        "unit=a&unit=b",
        f"unit={world.unit.id}&unit=zz",
        "unit[]=1",
        "refresh=1&refresh=0",
        "refresh",
        "unit",
        "%ff%fe=%ff",
        "unit=%00",
        "=" * 100,
        "&" * 1000,
    ):
        for route in ("/alerts/count", "/stats"):
            response = client.get(f"{base}{route}?{query}")
            assert response.status_code in (200, 400, 404), (route, query)
            assert response["Content-Type"] == "application/json"


def test_more_query_fields_than_django_allows_is_a_json_400(world):
    response = world.client("manager").get(f"/api/orgs/{world.org.id}/stats?" + "&".join(["a=1"] * 1001))
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
