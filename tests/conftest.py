"""Fixtures on the real Redis and PostgreSQL (never mocks of them)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings
from prometheus_client import REGISTRY

from tests import services


def pytest_configure(config: pytest.Config) -> None:
    services.ensure_all()


@pytest.fixture(scope="session", autouse=True)
def _close_connection_pools(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Close psycopg pools (threads in the concurrency tests return connections to them) before
    pytest-django drops the test database, which it cannot do while pooled sessions hold it."""
    yield
    from django.db import connections

    wrapper = type(connections["default"])
    if connections["default"].vendor == "postgresql":
        # A pooled connection still checked out by some other thread (asgiref's executor, say)
        # is not closed by closing the pool; end such sessions so the database can be dropped.
        with django_db_blocker.unblock(), connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    if hasattr(wrapper, "_connection_pools"):
        # Pools are shared by every thread's connection wrapper (a class-level dict by alias).
        with django_db_blocker.unblock():
            for alias, pool in list(wrapper._connection_pools.items()):
                pool.close()
                del wrapper._connection_pools[alias]


@pytest.fixture
def redis_client() -> redis.Redis:
    """A plain client on the dashboard cache's test database."""
    return redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])


@pytest.fixture(autouse=True)
def _real_window_boundary(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests of the 15-minute boundary see the real one (`tests.switches`: the others see
    it a bucket away, so that a test running across it keeps its cached values)."""
    if request.node.get_closest_marker("window_boundary") is not None:
        from stats import services, windows
        from stats.cache import ttl

        for module in (ttl, services):
            monkeypatch.setattr(module, "ms_to_next_bucket", windows.ms_to_next_bucket)


@pytest.fixture(autouse=True)
def _clean_redis(redis_client: redis.Redis) -> Iterator[None]:
    from stats import cache

    assert settings.REDIS_CACHE_DB not in (0, 1, 2), "tests must run on their own Redis database"
    redis_client.flushdb()
    cache.reset_breaker()
    yield
    cache.reset_breaker()


@pytest.fixture
def subscribe() -> Callable[[uuid.UUID], Callable[[int], list[dict]]]:
    """`subscribe(org_id)` joins a channel to the organization's group, as a dashboard's socket
    does, and returns `received(count)`: the next `count` group messages (5 s for each)."""
    from channels.layers import get_channel_layer

    from realtime import broadcast

    layer = get_channel_layer()

    def join(org_id: uuid.UUID) -> Callable[[int], list[dict]]:
        async def add() -> str:
            channel = await layer.new_channel()
            await layer.group_add(broadcast.group_name(org_id), channel)
            return channel

        channel = async_to_sync(add)()

        def received(count: int) -> list[dict]:
            async def read() -> list[dict]:
                return [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(count)]

            return async_to_sync(read)()

        return received

    return join


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _caches_at(url: str) -> dict:
    return {alias: {**config, "LOCATION": url} for alias, config in settings.CACHES.items()}


@pytest.fixture
def redis_down(closed_port: int) -> Iterator[None]:
    """Point every Redis cache client at a closed port for the duration of a test."""
    from stats import cache

    with override_settings(CACHES=_caches_at(f"redis://127.0.0.1:{closed_port}/{settings.REDIS_CACHE_DB}")):
        cache.reset_breaker()
        yield
    for alias in settings.CACHES:
        caches[alias].close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections, reads nothing and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:  # frees a request still hung on them
            conn.close()
        listener.close()


@pytest.fixture
def redis_silent(silent_port: int) -> Iterator[None]:
    """Redis that accepts connections and never answers: only timeouts can save a request."""
    from stats import cache

    with override_settings(CACHES=_caches_at(f"redis://127.0.0.1:{silent_port}/{settings.REDIS_CACHE_DB}")):
        cache.reset_breaker()
        yield


@pytest.fixture(scope="session")
def serve_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The production topology's SQLite database, migrated and seeded with `seed_demo`."""
    from tests import topology as serve

    return serve.seeded_database(tmp_path_factory.mktemp("serve-db"))


@pytest.fixture(scope="session")
def topology(serve_database: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The production topology (ops/serve.py: nginx, gunicorn, daphne, sweep) on a free HTTPS
    port with a certificate made for it; stopped at the end of the session."""
    from tests import topology as serve

    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        subprocess.run(["bash", str(serve.REPO / "tests" / "system_deps.sh")], check=False)
    workdir = tmp_path_factory.mktemp("serve")
    running = serve.start(workdir, serve_database, tls_pair=serve.make_certificate(workdir / "tls"))
    yield running
    running.stop()
