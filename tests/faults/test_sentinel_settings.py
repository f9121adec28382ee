"""REDIS_SENTINELS switches the cache, the sessions and the channel layer to Sentinel discovery."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.live import ROOT

SCRIPT = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps([s.CACHES['default'], s.CACHES['sessions'], s.CHANNEL_LAYERS['default']['CONFIG']]))"
)


def _settings(**env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard_project.settings", **env}
    command = [sys.executable, "-c", SCRIPT]
    return subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=30)


def test_redis_sentinels_configure_the_cache_sessions_and_channel_layer():
    out = _settings(
        REDIS_SENTINELS="10.0.0.1:26379, sentinel-b:26380",
        REDIS_SENTINEL_MASTER="cache-master",
        REDIS_CACHE_DB="3",
        REDIS_CHANNELS_DB="4",
    )
    assert out.returncode == 0, out.stderr
    default, sessions, channels = json.loads(out.stdout)
    sentinels = [["10.0.0.1", 26379], ["sentinel-b", 26380]]
    for cache in (default, sessions):
        assert cache["LOCATION"] == "redis://cache-master/3"
        assert cache["OPTIONS"]["CLIENT_CLASS"] == "django_redis.client.SentinelClient"
        assert cache["OPTIONS"]["CONNECTION_FACTORY"] == "django_redis.pool.SentinelConnectionFactory"
        assert cache["OPTIONS"]["SENTINELS"] == sentinels
    assert channels["hosts"] == [
        {"sentinels": sentinels, "master_name": "cache-master", "db": 4, "max_connections": 2000, "socket_timeout": 10}
    ]

    refused = _settings(REDIS_SENTINELS="no-port-here")
    assert refused.returncode != 0 and "REDIS_SENTINELS entries must be host:port" in refused.stderr


def test_without_sentinels_redis_url_is_used():
    out = _settings(
        REDIS_SENTINELS="", REDIS_URL="redis://cache.internal:6380", REDIS_CACHE_DB="3", REDIS_CHANNELS_DB="4"
    )
    assert out.returncode == 0, out.stderr
    default, _, channels = json.loads(out.stdout)
    assert default["LOCATION"] == "redis://cache.internal:6380/3"
    assert default["OPTIONS"]["CLIENT_CLASS"] == "django_redis.client.DefaultClient"
    assert channels["hosts"] == [
        {"address": "redis://cache.internal:6380/4", "max_connections": 2000, "socket_timeout": 10}
    ]


TRACKED_CONNECTION = (
    "import json; from django.core.cache import caches; from stats import cache; "
    "connection = cache.lane.near_cache(caches['default'].client.get_client(write=True))._make_connection(); "
    "proxy = connection.connection_pool; "
    "print(json.dumps([type(connection).__name__, connection.protocol, proxy.service_name, proxy.is_master, "
    "connection.db]))"
)


def test_under_sentinels_the_tracked_copies_connect_to_the_master_the_sentinels_name():
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dashboard_project.settings",
        "REDIS_SENTINELS": "10.0.0.1:26379",
        "REDIS_SENTINEL_MASTER": "cache-master",
        "REDIS_CACHE_DB": "3",
        "CACHE_NEAR_MAX_MB": "32",
    }
    command = [sys.executable, "-c", TRACKED_CONNECTION]
    out = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=30)

    assert out.returncode == 0, out.stderr
    # Nothing is connected yet: the class, protocol and service say where a connect will go.
    assert json.loads(out.stdout) == ["SentinelManagedConnection", 3, "cache-master", True, 3]
