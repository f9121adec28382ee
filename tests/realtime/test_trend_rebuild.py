"""A trend read after its value expired is rebuilt from the state kept beside it, with one query
(the unit, to check that the state holds its newest reading and its range) instead of
aggregating 24 h of readings; a state that is not current is not used."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from stats import selectors, services
from stats.cache import QueryType, cache_key
from stats.models import Unit
from tests import factories
from tests.conftest import metric
from tests.realtime.conftest import minutes, uplink

pytestmark = pytest.mark.django_db

TRENDS = "temperature:trends"


def _trends(site, unit, query: str = ""):
    return site.client.get(f"/api/orgs/{site.org.id}/units/{unit.id}/trends{query}")


def _fresh(unit) -> bytes:
    return services.json_bytes(selectors.unit_trend(org_id=unit.organization_id, unit_id=unit.id))


def _expire(redis_client, unit) -> str:
    """What the value's TTL does; the state lives on (an hour)."""
    key = cache_key(QueryType.TEMPERATURE_TRENDS, unit.organization_id, unit.id)
    assert redis_client.delete(key) == 1
    assert redis_client.exists(f"dashmeta:state:{key}") == 1
    return key


def _counts() -> tuple[float, float]:
    return metric("dashboard_cache_rebuilt_total", query_type=TRENDS), metric(
        "dashboard_cache_recompute_total", query_type=TRENDS
    )


@pytest.fixture
def reported(site, post, redis_client):
    """A unit with readings through the webhook and its trend cached, then expired."""
    unit, dev = site.units[0], site.devices[0].dev_eui
    start = timezone.now() - minutes(40)
    for i, temperature in enumerate((4.0, 4.5, 5.25)):
        assert post(uplink(dev, temperature, at=start + minutes(15 * i))).json()["status"] == "stored"
    assert _trends(site, unit).status_code == 200
    return unit, _expire(redis_client, unit)


def test_an_expired_trend_is_rebuilt_from_its_state_with_one_query_and_equals_a_computation(
    site, reported, redis_client
):
    unit, key = reported
    rebuilt, computed = _counts()
    with CaptureQueriesContext(connection) as queries:
        response = _trends(site, unit)
    assert response.status_code == 200
    assert _counts() == (rebuilt + 1, computed)
    assert response.content == _fresh(unit) == redis_client.get(key)
    # The session and membership are cached too: the unit's row is the only query.
    assert [q["sql"] for q in queries.captured_queries if "stats_unit" in q["sql"]] == [
        q["sql"] for q in queries.captured_queries
    ]
    assert len(queries.captured_queries) == 1
    assert 58 <= redis_client.ttl(key) <= 60


def test_a_state_missing_the_units_newest_reading_is_not_used(site, reported, redis_client):
    """A reading whose in-place update was lost (Redis failed after the commit) is in the
    database, not in the state: the unit's newest reading id tells."""
    unit, _ = reported
    lost = factories.reading(unit, 9.75)
    Unit.objects.filter(pk=unit.pk).update(latest_reading_id=lost.id)  # as the webhook's commit does
    rebuilt, computed = _counts()
    response = _trends(site, unit)
    assert _counts() == (rebuilt, computed + 1)
    assert response.content == _fresh(unit)
    assert 9.75 in [p["max"] for p in response.json()["points"]]


def test_a_state_of_another_range_is_not_used(site, reported):
    unit, _ = reported
    Unit.objects.filter(pk=unit.pk).update(temp_max=5.0)  # no signal: as a change the state missed
    rebuilt, computed = _counts()
    response = _trends(site, unit)
    assert _counts() == (rebuilt, computed + 1)
    assert response.content == _fresh(unit)
    assert "too_hot" in [p["alarmState"] for p in response.json()["points"]]


def test_refresh_asks_the_database_even_with_a_current_state(site, reported):
    unit, _ = reported
    rebuilt, computed = _counts()
    assert _trends(site, unit, "?refresh=1").content == _fresh(unit)
    assert _counts() == (rebuilt, computed + 1)


def test_a_unit_of_another_organization_is_not_found_from_its_state_either(site, reported, redis_client):
    unit, key = reported
    other = factories.organization("Elsewhere")
    response = site.client.get(f"/api/orgs/{other.id}/units/{unit.id}/trends")
    assert response.status_code in (403, 404)  # not a member there: nothing of the unit is read
    stranger_key = cache_key(QueryType.TEMPERATURE_TRENDS, other.id, unit.id)
    assert redis_client.exists(stranger_key) == 0
    with pytest.raises(services.UnitNotFound):
        selectors.unit_trend_from_state(redis_client.get(f"dashmeta:state:{key}"), org_id=other.id, unit_id=unit.id)
