"""Issue 7, acceptance 1: Redis killed under load. Every request still answers 200, the outage
costs about what running without a cache costs, and the cache comes back by itself."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from stats.models import Membership, Role, TemperatureReading
from tests import factories
from tests.faults.load import Load, p95
from tests.faults.processes import RedisProcess, sample, scrape, stop_all
from tests.live import LiveServer, start_daphne

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

CLIENTS = 20
ORGS = 4
BASELINE_SECONDS = 4.0
WARM_SECONDS, OUTAGE_SECONDS, AFTER_SECONDS = 5.0, 8.0, 7.0
RECOVERY_SECONDS = 5.0


def _dashboard_user_cookie() -> tuple[str, list[str]]:
    """A member of several organizations with a day of readings; their stats paths."""
    person = factories.user()
    paths = []
    now = timezone.now()
    for _ in range(ORGS):
        org = factories.organization()
        factories.member(org)  # a colleague, so memberCount counts something
        Membership.objects.create(user=person, organization=org, role=Role.VIEWER)
        units = [factories.unit(org) for _ in range(3)]
        for unit in units:
            factories.device(unit)
            TemperatureReading.objects.bulk_create(
                TemperatureReading(
                    unit=unit,
                    organization_id=org.id,
                    temperature=4.0 + (i % 7),
                    recorded_at=now - timedelta(minutes=10 * i),
                    received_at=now - timedelta(minutes=10 * i),
                    uplink_id=f"{unit.id}:{i}",
                )
                for i in range(144)
            )
        paths.append(f"/api/orgs/{org.id}/stats")
    client = Client()
    client.force_login(person)
    return client.cookies["sessionid"].value, paths


class StatsScraper:
    """Polls /metrics: (time, stats hits, stats misses), to compute hit rates over windows."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.points: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            samples = scrape(self.server)
            hits = sample(samples, "dashboard_cache_hit_total", query_type="stats")
            misses = sample(samples, "dashboard_cache_miss_total", query_type="stats")
            self.points.append((time.monotonic(), hits, misses))
            self._stop.wait(0.25)

    def __enter__(self) -> StatsScraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def hit_rate(self, start: float, end: float) -> tuple[float, float]:
        """(hit rate, lookups) between the first scrape at/after `start` and the last at/before `end`."""
        inside = [p for p in self.points if start <= p[0] <= end]
        if len(inside) < 2:
            return 0.0, 0.0
        (_, h0, m0), (_, h1, m1) = inside[0], inside[-1]
        lookups = (h1 - h0) + (m1 - m0)
        return ((h1 - h0) / lookups if lookups else 0.0), lookups

    def recovered_at(self, after: float, *, window: float = 1.0, rate: float = 0.9) -> float | None:
        """End of the first `window` after `after` whose hit rate is >= `rate`."""
        for t, _, _ in self.points:
            if t - window >= after:
                hits, lookups = self.hit_rate(t - window, t)
                if lookups >= 10 and hits >= rate:
                    return t
        return None


def test_killing_redis_under_load_serves_every_request_at_cache_off_latency_and_the_cache_recovers(
    transactional_db, tmp_path
):
    cookie, paths = _dashboard_user_cookie()
    redis_server = RedisProcess(tmp_path / "redis").start()
    env = {"REDIS_URL": redis_server.url, "METRICS_TOKEN": ""}
    cached = uncached = None
    try:
        # The yardstick: the same load on an instance with the dashboard cache off.
        uncached = start_daphne(tmp_path, extra_env={**env, "CACHE_ENABLED": "0"})
        with Load(uncached, cookie=cookie, paths=paths, clients=CLIENTS) as load:
            time.sleep(BASELINE_SECONDS)  # the load runs for this long; nothing to synchronise on
        baseline = load.samples
        uncached.stop()
        assert [s for s in baseline if s.status != 200] == []
        cache_off_p95 = p95(baseline)

        cached = start_daphne(tmp_path, extra_env=env)
        with Load(cached, cookie=cookie, paths=paths, clients=CLIENTS) as load, StatsScraper(cached) as scraper:
            started = time.monotonic()
            time.sleep(WARM_SECONDS)
            redis_server.kill()
            killed = time.monotonic()
            time.sleep(OUTAGE_SECONDS)
            redis_server.start()  # same port, empty: nothing survives a SIGKILL without persistence
            restarted = time.monotonic()
            time.sleep(AFTER_SECONDS)
            ended = time.monotonic()

        failures = [s for s in load.samples if s.status != 200]
        outage = load.between(killed, restarted)
        warm_rate, _ = scraper.hit_rate(started + 1.0, killed)
        outage_rate, outage_lookups = scraper.hit_rate(killed + 0.5, restarted)
        recovered = scraper.recovered_at(restarted)
        late_rate, _ = scraper.hit_rate(recovered or ended, ended)
        report = (
            f"requests={len(load.samples)} failures={len(failures)} outage_requests={len(outage)} "
            f"cache_off_p95={cache_off_p95 * 1000:.1f}ms outage_p95={p95(outage) * 1000:.1f}ms "
            f"warm_hit_rate={warm_rate:.2f} outage_hit_rate={outage_rate:.2f} "
            f"recovered_after={None if recovered is None else round(recovered - restarted, 2)}s "
            f"hit_rate_after_recovery={late_rate:.2f}"
        )
        print(report)
        assert failures == [], report
        assert warm_rate >= 0.9, report
        assert outage_lookups > 0 and outage_rate == 0.0, report  # Redis really was gone
        assert p95(outage) <= 2 * cache_off_p95, report
        assert recovered is not None and recovered - restarted <= RECOVERY_SECONDS, report
        assert late_rate >= 0.9, report
    finally:
        stop_all(uncached, cached, redis_server)
