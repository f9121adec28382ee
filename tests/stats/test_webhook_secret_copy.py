"""The organization of a webhook secret, asked by every uplink, is served from this process's
tracked copy; a deletion by another process reaches the copy, and wrong secrets are not kept."""

from __future__ import annotations

import secrets

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stats import cache, services
from stats.cache.boundary import redis_call
from stats.cache.lane import near_cache
from stats.models import Organization, webhook_secret_digest
from tests import factories
from tests.conftest import metric

pytestmark = pytest.mark.django_db


def _copies():
    with redis_call("get") as client:
        return near_cache(client)


def test_a_known_secret_is_answered_from_the_copy_without_a_query_or_a_round_trip():
    org = factories.organization()
    digest = webhook_secret_digest(org.webhook_secret)
    assert services.webhook_organization(secret_digest=digest) == org.id  # the database; cached
    assert services.webhook_organization(secret_digest=digest) == org.id  # Redis; a copy kept
    hits, fetched = (
        metric("dashboard_cache_near_total", outcome="hit"),
        metric("dashboard_cache_near_total", outcome="fetched"),
    )

    with CaptureQueriesContext(connection) as queries:
        assert services.webhook_organization(secret_digest=digest) == org.id

    assert queries.captured_queries == []
    assert metric("dashboard_cache_near_total", outcome="hit") == hits + 1
    assert metric("dashboard_cache_near_total", outcome="fetched") == fetched


def test_a_secret_another_process_rotated_is_not_answered_from_the_copy(redis_client):
    org = factories.organization()
    old = webhook_secret_digest(org.webhook_secret)
    for _ in range(2):
        assert services.webhook_organization(secret_digest=old) == org.id
    # Another process rotates it: its database write, then its signal's deletion of the cached
    # answer (this process learns of it only through Redis's push).
    Organization.objects.filter(pk=org.pk).update(webhook_secret_sha256=webhook_secret_digest("rotated"))
    redis_client.delete(cache.webhook_key(old))

    assert services.webhook_organization(secret_digest=old) is None
    assert services.webhook_organization(secret_digest=webhook_secret_digest("rotated")) == org.id


def test_wrong_secrets_are_not_kept():
    copies = _copies()
    held, fetched = len(copies), metric("dashboard_cache_near_total", outcome="fetched")

    for _ in range(50):
        assert services.webhook_organization(secret_digest=webhook_secret_digest(secrets.token_hex(8))) is None

    assert len(copies) == held
    assert metric("dashboard_cache_near_total", outcome="fetched") == fetched
