"""The project with django-cachalot: every ORM query cached, invalidated per table on any write.

Its documentation's set-up: `cachalot` in INSTALLED_APPS and a supported cache as CACHALOT_CACHE
(the default alias, here the project's django-redis cache on the bench's cache db). Its
default timeout is infinite; it is the scenario's TTL here, like every contender's.
"""

from __future__ import annotations

from dashboard_project.settings import *  # noqa: F403
from dashboard_project.settings import CACHE_TTL_SECONDS, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "cachalot", "bench.peer_settings.counting.CachalotReads"]
CACHALOT_CACHE = "default"
CACHALOT_TIMEOUT = CACHE_TTL_SECONDS
