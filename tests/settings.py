"""Test settings: the project's settings, with Redis moved to databases the tests own and flush.

TEST_REDIS_CACHE_DB / TEST_REDIS_CHANNELS_DB (default 11 / 12) let two suites run side by side.
"""

import os

os.environ["REDIS_CACHE_DB"] = os.environ.get("TEST_REDIS_CACHE_DB", "11")
os.environ["REDIS_CHANNELS_DB"] = os.environ.get("TEST_REDIS_CHANNELS_DB", "12")

from dashboard_project.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
INSTALLED_APPS = [*INSTALLED_APPS, "tests.switches.WindowBoundaryABucketAway"]  # noqa: F405

# Lets two suites share one PostgreSQL server without sharing a test database.
if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}  # noqa: F405
elif DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not memory: live daphne processes started by the tests read the same database.
    (BASE_DIR / "var").mkdir(exist_ok=True)  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-{REDIS_CACHE_DB}.sqlite3")}  # noqa: F405
