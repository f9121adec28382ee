"""Settings for coldchain-dashboard, read from the environment.

Every variable read here is listed in `.env.example` and in the README's configuration table.
Defaults are for local development; bad values stop start-up with ImproperlyConfigured.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_int, env_list, env_str, redis_url_for_db, sentinel_address

BASE_DIR = Path(__file__).resolve().parent.parent


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = "dev-only-insecure-secret-key-change-me"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

# --- Behind the TLS proxy (ops/serve.py: nginx terminates TLS) -------------------------------
# On by default whenever DEBUG is off: a production deploy that forgets a switch then still gets
# secure cookies, HSTS and the HTTPS redirect (forgetting to turn it off on plain HTTP is loud: every
# page redirects to https), and `check --deploy` is clean. Turn it off only for plain-HTTP servers
# that are not public (the benchmarks). The proxy must set X-Forwarded-Proto on every request it
# forwards (ops/nginx/nginx.conf.template overwrites whatever the client sent), and the app must not
# be reachable around it (ops/serve.py binds gunicorn and daphne to Unix sockets).
BEHIND_TLS_PROXY = env_bool("DJANGO_BEHIND_TLS_PROXY", not DEBUG)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # Browsers ignore HSTS sent with a certificate they had to be told to accept, so a self-signed
    # local run pins nothing. Preload only marks the host eligible for the browsers' list; nothing
    # is submitted. Serve the dashboard from its own host name: subdomains get HTTPS-only too.
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
# CSRF_TRUSTED_ORIGINS is not needed: nginx passes the browser's Host header (with its port), so
# the https Origin of a form post is the request's own origin.

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "channels",
    "stats",
    "realtime",
]

MIDDLEWARE = [
    # First: serves cached dashboard hits in one Redis round trip (stats/fast_path.py).
    "stats.fast_path.FastPathMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dashboard_project.middleware.DatabaseUnavailableMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "dashboard_project.urls"
WSGI_APPLICATION = "dashboard_project.wsgi.application"
ASGI_APPLICATION = "dashboard_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite by default so `make run` works on a bare machine; PostgreSQL through DATABASE_URL.
# Under ASGI every sync view runs on a thread of its own, and persistent connections per thread
# exhaust PostgreSQL's connection limit under concurrent requests, so connections are not kept
# (CONN_MAX_AGE=0) and psycopg's pool is used.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 10, minimum=1)
_db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
_engine = _db["ENGINE"]
if _engine == "django.db.backends.postgresql":
    _db["ENGINE"] = "django_prometheus.db.backends.postgresql"
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_MAX_SIZE,
        "timeout": 2,
    }
    # Fail fast when PostgreSQL is down: /health and the webhook answer 503 quickly.
    _db["OPTIONS"]["connect_timeout"] = 2
elif _engine == "django.db.backends.sqlite3":
    _db["ENGINE"] = "django_prometheus.db.backends.sqlite3"
    # IMMEDIATE: concurrent writers queue for the lock instead of failing to upgrade a read lock.
    _db.setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
else:
    raise ImproperlyConfigured(f"DATABASE_URL must be postgres:// or sqlite://, got {_engine}")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis ----------------------------------------------------------------------------------
_redis_host = os.environ.get("REDIS_HOST")
if "REDIS_URL" in os.environ:
    REDIS_URL = env_str("REDIS_URL", "")
elif _redis_host:
    REDIS_URL = f"redis://{_redis_host}:{env_int('REDIS_PORT', 6379, minimum=1)}"
else:
    REDIS_URL = "redis://127.0.0.1:6379"
# The dashboard cache and the channel layer live in their own databases, so that a full-org
# sweep (SCAN) never walks the channel layer's keys and the tests can flush their own db.
REDIS_CACHE_DB = env_int("REDIS_CACHE_DB", 1)
REDIS_CHANNELS_DB = env_int("REDIS_CHANNELS_DB", 2)
if REDIS_CACHE_DB == REDIS_CHANNELS_DB:
    raise ImproperlyConfigured("REDIS_CACHE_DB and REDIS_CHANNELS_DB must differ")
# Short timeouts: a dead Redis must cost a request milliseconds, not seconds (NFR: degrade).
REDIS_SOCKET_TIMEOUT = env_int("REDIS_SOCKET_TIMEOUT_MS", 250, minimum=1) / 1000

CACHE_TTL_SECONDS = env_int("CACHE_TTL_SECONDS", 60, minimum=1)
# CACHE_ENABLED=0 turns the dashboard cache off (benchmarks compare cache on and off).
CACHE_ENABLED = env_bool("CACHE_ENABLED", True)
# CACHE_FAST_PATH=0 sends cached hits through the whole middleware stack (stats/fast_path.py).
CACHE_FAST_PATH = env_bool("CACHE_FAST_PATH", True)
# Each process keeps what the fast path read, up to this many MiB, exact through Redis's
# invalidation pushes (CLIENT TRACKING, stats/near.py; behind Sentinel the tracked connection
# follows the master like the others); 0 reads Redis on every request.
CACHE_NEAR_MAX_MB = env_int("CACHE_NEAR_MAX_MB", 32, minimum=0)
# After repeated Redis failures the cache is skipped for this long, then probed again.
CACHE_BREAKER_OPEN_SECONDS = env_int("CACHE_BREAKER_OPEN_SECONDS", 2, minimum=0)


# Redis Sentinel (optional): when set, the master is found through these sentinels and REDIS_URL
# is not used; after a failover new connections go to the promoted replica.
REDIS_SENTINELS = [sentinel_address(item) for item in env_list("REDIS_SENTINELS", [])]
REDIS_SENTINEL_MASTER = env_str("REDIS_SENTINEL_MASTER", "mymaster")

_redis_cache_options = {
    "CLIENT_CLASS": "django_redis.client.DefaultClient",
    "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
    "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
    "CONNECTION_POOL_KWARGS": {"max_connections": 100, "retry_on_timeout": False},
}
_redis_cache_location = redis_url_for_db(REDIS_URL, REDIS_CACHE_DB)
_channels_host: str | dict = redis_url_for_db(REDIS_URL, REDIS_CHANNELS_DB)
if REDIS_SENTINELS:
    # django-redis reads the master's name from the URL's host part.
    _redis_cache_location = f"redis://{REDIS_SENTINEL_MASTER}/{REDIS_CACHE_DB}"
    _redis_cache_options.update(
        {
            "CLIENT_CLASS": "django_redis.client.SentinelClient",
            "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
            "CONNECTION_POOL_CLASS": "redis.sentinel.SentinelConnectionPool",
            "SENTINELS": REDIS_SENTINELS,
        }
    )
    _channels_host = {"sentinels": REDIS_SENTINELS, "master_name": REDIS_SENTINEL_MASTER, "db": REDIS_CHANNELS_DB}
CACHES = {
    # The dashboard cache. Errors are NOT ignored here: stats/cache.py catches, counts and
    # logs them (IGNORE_EXCEPTIONS would make a failed invalidation look like success).
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": _redis_cache_location,
        "KEY_FUNCTION": "stats.cache.make_key",
        "TIMEOUT": CACHE_TTL_SECONDS,
        "OPTIONS": _redis_cache_options,
    },
    # Sessions: cached_db reads them from Redis (no query on the hot path) and falls back to the
    # database when Redis fails; stats/sessions.py makes its calls through the cache boundary,
    # which catches, counts and logs the errors (once per outage, not per request).
    "sessions": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": _redis_cache_location,
        "KEY_PREFIX": "session",
        # JSON (Django's own session format), so the fast path's Lua can read the user id.
        # Version 2: version 1 keys held pickles; they are ignored (read from the database).
        "VERSION": 2,
        "TIMEOUT": 60 * 60 * 24 * 14,
        "OPTIONS": {
            **_redis_cache_options,
            "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
        },
    },
}
# delete_pattern's SCAN batch: with the default of 10, a sweep over 100k keys takes 10k round trips.
DJANGO_REDIS_SCAN_ITERSIZE = 10_000

SESSION_ENGINE = "stats.sessions"
SESSION_CACHE_ALIAS = "sessions"

# redis-py's asyncio pool refuses a 101st connection ("Too many connections"), and every
# WebSocket connect holds one for its group_add: a reconnect storm of more than 100 dashboards
# on one daphne (after a restart, say) failed their connects with 1011. Connections are cheap
# for Redis (maxclients 10,000 by default); the pool keeps what it opened for reuse.
CHANNEL_LAYER_MAX_CONNECTIONS = 2000
# A consumer waits for its next message with a blocking pop of 5 s (channels-redis's brpop_timeout),
# looped. redis-py 8 reads every reply with a 5 s socket timeout by default, so the pop's empty
# answer raced the timeout and every idle dashboard's consumer crashed (close 1011) after ~5 s.
# Reads wait longer than the pop; a Redis that hangs still fails the read after this.
CHANNEL_LAYER_SOCKET_TIMEOUT = 10
_channels_host = ({"address": _channels_host} if isinstance(_channels_host, str) else dict(_channels_host)) | {
    "max_connections": CHANNEL_LAYER_MAX_CONNECTIONS,
    "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT,
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [_channels_host],
            # Per-channel queue bound. Events are small and a browser drains them at once; 500
            # gives a slow tab room for a burst of a 50-unit org without unbounded memory.
            "capacity": 500,
            "expiry": 30,
        },
    },
}

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
CSRF_FAILURE_VIEW = "dashboard_project.views.csrf_failure"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Domain ---------------------------------------------------------------------------------
DEVICE_OFFLINE_AFTER_SECONDS = env_int("DEVICE_OFFLINE_AFTER_SECONDS", 900, minimum=1)
# Unit state machine: an excursion becomes an alarm after this long out of range (measured from
# when it began), and a restoring unit is ok again after this long back in range.
ALARM_CONFIRM_DELAY_SECONDS = env_int("ALARM_CONFIRM_DELAY_SECONDS", 600, minimum=0)
RESTORE_STABLE_SECONDS = env_int("RESTORE_STABLE_SECONDS", 600, minimum=0)
# TTN uplinks are ~1-2 KB; anything far bigger is refused with 413 before it is parsed.
WEBHOOK_MAX_BODY_BYTES = env_int("WEBHOOK_MAX_BODY_BYTES", 16_384, minimum=256)
# Uplinks that stored nothing yet (a model not catalogued, a device not registered or assigned) are
# kept raw for `reprocess_uplinks`: this many days, at most this many per organization (the sweep
# prunes them), so a fleet of unreadable devices cannot fill the database.
KEPT_UPLINK_RETENTION_DAYS = env_int("KEPT_UPLINK_RETENTION_DAYS", 14, minimum=1)
KEPT_UPLINK_MAX_PER_ORG = env_int("KEPT_UPLINK_MAX_PER_ORG", 10_000, minimum=1)
# /metrics requires "Authorization: Bearer <METRICS_TOKEN>" when set.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# --- Stopping -------------------------------------------------------------------------------
# On SIGTERM/SIGINT a server lets the requests in flight finish for at most this long (daphne
# through dashboard_project.asgi_server, gunicorn's graceful_timeout in gunicorn.conf.py). Keep it
# below the supervisor's kill timeout (Docker 10 s, Kubernetes 30 s, systemd 90 s by default).
SHUTDOWN_GRACE_SECONDS = env_int("SHUTDOWN_GRACE_SECONDS", 8, minimum=1)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
