"""WSGI entry point: gunicorn serves HTTP here in production (see README, Operations)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_project.settings")
application = get_wsgi_application()

from dashboard_project.startup import freeze_startup_heap  # noqa: E402 - needs Django set up first

freeze_startup_heap()
