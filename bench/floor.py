"""The floor: a bare Django JSON view with no middleware, no cache, no database.

Its own settings and URLconf in this one module, served like the project:
    gunicorn bench.floor:wsgi_application      daphne bench.floor:asgi_application
The body has the shape and size of a real /stats answer, so the difference to the cached stats
endpoint is exactly what the project adds per request (middleware, session, authorization, Redis).
"""

from __future__ import annotations

import os

from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path

SECRET_KEY = "bench-floor-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = __name__
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict] = {}
USE_TZ = True

STATS_SHAPED = {
    "organizationId": "00000000-0000-4000-8000-000000000000",
    "unitCounts": {"normal": 21, "warning": 1, "critical": 2, "offline": 1, "too_hot": 2, "too_cold": 1, "total": 25},
    "alertCounts": {"unresolved": 3, "active": 1, "acknowledged": 1, "escalated": 1, "resolved": 20},
    "deviceCounts": {"online": 24, "offline": 1},
    "compliancePercentage": 98.61,
    "memberCount": 1,
    "siteCount": 2,
    "worstState": "critical",
    "lastUpdated": "2025-01-01T00:00:00.000000Z",
}


def floor_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(STATS_SHAPED)


# /floor, and every API path (the realistic day's dashboards, bench/realistic.py).
urlpatterns = [path("floor", floor_view), re_path(r"^api/", floor_view)]

os.environ["DJANGO_SETTINGS_MODULE"] = __name__

from django.core.asgi import get_asgi_application  # noqa: E402 - settings must be named first
from django.core.wsgi import get_wsgi_application  # noqa: E402

wsgi_application = get_wsgi_application()
asgi_application = get_asgi_application()
