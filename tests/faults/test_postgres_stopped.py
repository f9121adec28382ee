"""Issue 7, acceptance 2: PostgreSQL stopped under a steady uplink stream, then started again.

Runs on a private cluster (never the machine's shared PostgreSQL), so it can be crashed at will.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter

import httpx
import psycopg
import pytest

from tests.faults.load import UplinkStream
from tests.faults.processes import PostgresCluster, stop_all, wait_for
from tests.live import ROOT, LiveServer, start_daphne

pytestmark = pytest.mark.live

SEED = """
import json
from tests import factories
org = factories.organization("Crash")
device = factories.device(factories.unit(org))
print(json.dumps({"secret": org.webhook_secret, "devEui": device.dev_eui}))
"""


def _manage(cluster: PostgresCluster, *args: str) -> str:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": cluster.url}
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _stored_frame_counts(cluster: PostgresCluster, dev_eui: str) -> Counter[int]:
    """How many rows each frame counter has (uplink ids are `{devEui}:{fCnt}:{receivedAt}`)."""
    with psycopg.connect(cluster.url.replace("postgres://", "postgresql://"), connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT uplink_id FROM stats_temperaturereading WHERE uplink_id LIKE %s", [f"{dev_eui}:%"]
        ).fetchall()
    return Counter(int(uplink_id.split(":")[1]) for (uplink_id,) in rows)


def _health(server: LiveServer) -> int:
    try:
        return httpx.get(f"{server.url}/health", timeout=10).status_code
    except httpx.HTTPError:
        return 0


def test_with_postgres_crashed_health_and_webhook_answer_503_nothing_half_written_and_it_recovers(tmp_path):
    cluster = PostgresCluster()
    server = None
    try:
        cluster.init()
        cluster.start()
        _manage(cluster, "migrate", "--noinput")
        seeded = json.loads(_manage(cluster, "shell", "-c", SEED).strip().splitlines()[-1])
        server = start_daphne(tmp_path, extra_env={"DATABASE_URL": cluster.url})
        assert _health(server) == 200

        with UplinkStream(server, secret=seeded["secret"], dev_eui=seeded["devEui"]) as stream:
            wait_for(lambda: sum(p.status == 200 for p in stream.posts) >= 10, timeout=10, what="uplinks stored")
            cluster.stop_immediately()
            stopped = time.monotonic()
            wait_for(lambda: _health(server) == 503, timeout=5, what="/health to answer 503")
            unhealthy_after = time.monotonic() - stopped
            wait_for(lambda: sum(p.status == 503 for p in stream.after(stopped)) >= 3, timeout=15, what="503s")

            cluster.start()
            restarted = time.monotonic()
            wait_for(lambda: _health(server) == 200, timeout=20, what="/health to answer 200 again")
            healthy_after = time.monotonic() - restarted
            wait_for(lambda: any(p.status == 200 for p in stream.after(restarted)), timeout=10, what="a stored uplink")
            stored_after = time.monotonic() - restarted

        posts = stream.posts
        print(
            f"posts={len(posts)} statuses={dict(Counter(p.status for p in posts))} "
            f"unhealthy_after={unhealthy_after:.2f}s healthy_after={healthy_after:.2f}s "
            f"stored_after={stored_after:.2f}s"
        )
        assert unhealthy_after <= 3.0
        assert {p.status for p in posts} <= {200, 503}, Counter(p.status for p in posts)
        for failed in (p for p in posts if p.status == 503):
            assert failed.body["error"].startswith("database unavailable"), failed.body
        # TTN retries a 503: it must not have been stored; a 200 must be stored exactly once.
        stored = _stored_frame_counts(cluster, seeded["devEui"])
        assert {p.f_cnt: stored[p.f_cnt] for p in posts if p.status == 200} == {
            p.f_cnt: 1 for p in posts if p.status == 200
        }
        assert [p.f_cnt for p in posts if p.status == 503 and stored[p.f_cnt]] == []
        assert sum(stored.values()) == sum(p.status == 200 for p in posts)

        # TTN's retries of the refused uplinks are stored now, and a repeated delivery is not stored twice.
        retried = [p for p in posts if p.status == 503] + [posts[0]]
        headers = {"X-Webhook-Secret": seeded["secret"]}
        answers = [
            httpx.post(f"{server.url}/api/webhooks/ttn", json=p.payload, headers=headers, timeout=10).json()["status"]
            for p in retried
        ]
        assert answers == ["stored"] * (len(retried) - 1) + ["duplicate"]
        assert set(_stored_frame_counts(cluster, seeded["devEui"]).values()) == {1}
    finally:
        stop_all(server, cluster)
