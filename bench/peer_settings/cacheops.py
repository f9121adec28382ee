"""The project with django-cacheops: ORM queries cached, invalidated by the conditions they filter on.

Its documentation's set-up: `cacheops` in INSTALLED_APPS, CACHEOPS_REDIS (the bench's cache db),
and a profile per app: every operation of the dashboard's models (`stats.*`, ops "all"), and the
user lookup (`auth.user`, ops "get", as its example has it), all at the scenario's TTL.
"""

from __future__ import annotations

from dashboard_project.env import redis_url_for_db
from dashboard_project.settings import *  # noqa: F403
from dashboard_project.settings import CACHE_TTL_SECONDS, INSTALLED_APPS, REDIS_CACHE_DB, REDIS_URL

INSTALLED_APPS = [*INSTALLED_APPS, "cacheops", "bench.peer_settings.counting.CacheopsReads"]
CACHEOPS_REDIS = redis_url_for_db(REDIS_URL, REDIS_CACHE_DB)
CACHEOPS = {
    "stats.*": {"ops": "all", "timeout": CACHE_TTL_SECONDS},
    "auth.user": {"ops": "get", "timeout": CACHE_TTL_SECONDS},
}
