"""A statement compiled once answers for every value exactly what its queryset answers."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from stats import selectors
from stats.models import Organization
from stats.statements import OneValueStatement


@pytest.mark.django_db
def test_each_value_gets_its_own_row_as_the_queryset_gives_it(dashboard):
    statement = OneValueStatement(selectors._counts_of, Organization._meta.pk)
    for org in (dashboard.org_a, dashboard.org_b, dashboard.org_a):  # compiled on the first only
        expected = tuple(selectors._counts_of(org.id)[0])
        with CaptureQueriesContext(connection) as queries:
            row = statement.first(org.id)
        assert len(queries) == 1
        assert row == expected
    # Org A's counts are not org B's: the value was swapped, not kept from the first compile.
    assert statement.first(dashboard.org_a.id) != statement.first(dashboard.org_b.id)
    assert statement.first(dashboard.org_a.id)[0]["total"] == 3  # JSON converted as the ORM does
    assert statement.first(uuid.uuid4()) is None


@pytest.mark.django_db
def test_a_statement_that_uses_its_value_twice_is_refused():
    twice = OneValueStatement(
        lambda org_id: Organization.objects.filter(Q(pk=org_id) | Q(pk=org_id, name="x")).values_list("id"),
        Organization._meta.pk,
    )
    with pytest.raises(ValueError, match="2 times"):
        twice.first(uuid.uuid4())
