"""Test settings: the project's settings, with Redis moved to databases the tests own and flush."""

import os

os.environ["REDIS_CACHE_DB"] = "11"
os.environ["REDIS_CHANNELS_DB"] = "12"

from dashboard_project.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
