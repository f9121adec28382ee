"""A channel layer that accepts connections and never answers must not hang ingestion.

tests/realtime/test_redis_down.py covers a refused connection (fails fast on its own); a hung
Redis only ends because the send is bounded (`broadcast.SEND_TIMEOUT_SECONDS`). The request does
not wait for it at all: sends are queued (`realtime.send_loop`), and one that waited longer than
the timeout behind a hung one is dropped, both counted as failed sends.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connections
from django.test import Client, override_settings

from realtime import broadcast
from stats.cache import QueryType, cache_key
from stats.models import TemperatureReading
from tests import factories
from tests.conftest import metric
from tests.realtime.conftest import uplink

pytestmark = pytest.mark.django_db(transaction=True)

# A hang must fail the test, not stall the run.
BOUND_SECONDS = broadcast.SEND_TIMEOUT_SECONDS + 2.0


def _post_with_deadline(org, body: dict, seconds: float) -> tuple[int | None, float]:
    """POST in a thread (a hang must fail this test, not stall the run): (status or None, elapsed)."""
    outcome: dict[str, int] = {}

    def run() -> None:
        try:
            headers = {"X-Webhook-Secret": org.webhook_secret}
            response = Client().post("/api/webhooks/ttn", data=body, content_type="application/json", headers=headers)
            outcome["status"] = response.status_code
        finally:
            connections.close_all()

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=seconds)
    return outcome.get("status"), time.monotonic() - started


def test_an_unanswering_channel_layer_holds_no_uplink_and_its_sends_are_counted_failed(
    transactional_db, silent_port, redis_client
):
    org = factories.organization("Hung")
    unit = factories.unit(org)
    device = factories.device(unit)
    trends = cache_key(QueryType.TEMPERATURE_TRENDS, org.id, unit.id)
    redis_client.set(trends, b"{}")
    layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{silent_port}/0"]},
        }
    }
    send_errors = metric("dashboard_broadcast_errors_total", stage="send")
    with override_settings(CHANNEL_LAYERS=layers):
        results = [_post_with_deadline(org, uplink(device.dev_eui, t), 2 * BOUND_SECONDS) for t in (4.0, 4.5)]
    assert [status for status, _ in results] == [200, 200]
    # Answered without waiting for the send (each would take the whole timeout).
    assert max(elapsed for _, elapsed in results) < broadcast.SEND_TIMEOUT_SECONDS, results
    assert TemperatureReading.objects.filter(device=device).count() == 2
    # Invalidated (and, being a trend, refreshed from the committed readings) before the send
    # was attempted: both readings are in it.
    assert json.loads(redis_client.get(trends))["points"][-1]["max"] == 4.5
    assert broadcast.sends_flush(BOUND_SECONDS)  # each timed out, or waited too long behind the other
    assert metric("dashboard_broadcast_errors_total", stage="send") == send_errors + 2
