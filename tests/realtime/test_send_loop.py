"""The channel-layer sends of a process run on one long-lived event loop, so their Redis
connections stay open (a gunicorn worker made a new connection for every send before)."""

from __future__ import annotations

import os
import threading
import uuid
from types import SimpleNamespace

import pytest
import redis
from channels.layers import get_channel_layer

from realtime import broadcast, events, send_loop
from realtime.events import EventType
from tests.conftest import metric

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscriber(subscribe):
    """An organization's group with a channel in it, and a way to read what reached it."""
    org_id = uuid.uuid4()
    return org_id, subscribe(org_id)


def _event(org_id: uuid.UUID, n: int) -> events.Event:
    return events.Event(EventType.READING, org_id, None, {"n": n})


def _connections_received() -> int:
    host = get_channel_layer().hosts[0]["address"]
    return redis.Redis.from_url(host).info("stats")["total_connections_received"]


def test_sends_from_a_thread_without_an_event_loop_share_one_redis_connection(subscriber):
    org_id, received = subscriber
    broadcast.emit([_event(org_id, 0)])  # the process's send loop connects, if it had not yet
    assert broadcast.sends_flush()
    before = _connections_received()
    for n in range(1, 6):
        broadcast.emit([_event(org_id, n)])
    assert broadcast.sends_flush()
    # one connection for the INFO itself; the five sends opened none
    assert _connections_received() - before == 1
    assert [m["events"][0]["data"]["n"] for m in received(6)] == [0, 1, 2, 3, 4, 5]


def test_a_forked_child_sends_on_its_own_loop(subscriber):
    org_id, received = subscriber
    broadcast.emit([_event(org_id, 1)])  # the parent's loop exists; its thread is not inherited
    assert broadcast.sends_flush()
    errors = metric("dashboard_broadcast_errors_total", stage="send")
    pid = os.fork()
    if pid == 0:
        failed = True
        try:
            broadcast.emit([_event(org_id, 2)])
            failed = not broadcast.sends_flush() or metric("dashboard_broadcast_errors_total", stage="send") != errors
        finally:
            os._exit(1 if failed else 0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [m["events"][0]["data"]["n"] for m in received(2)] == [1, 2]


def _send_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "channel-layer-send"]


def _layer_connections() -> int:
    host = get_channel_layer().hosts[0]["address"]
    client = redis.Redis.from_url(host)
    db = client.connection_pool.connection_kwargs["db"]
    return sum(1 for c in client.client_list() if int(c["db"]) == db) - 1  # not the counting one


def test_closing_the_send_loop_stops_its_thread_and_closes_its_redis_connections(subscriber):
    org_id, received = subscriber
    broadcast.emit([_event(org_id, 1)])  # the loop runs and is connected
    assert broadcast.sends_flush()
    assert len(_send_threads()) == 1
    connections = _layer_connections()

    broadcast.send_loop_close()  # the process is stopping (dashboard_project.shutdown)

    assert _send_threads() == []
    assert _layer_connections() < connections
    broadcast.emit([_event(org_id, 2)])  # a later send starts a new loop: nothing breaks
    assert [m["events"][0]["data"]["n"] for m in received(2)] == [1, 2]


@pytest.fixture
def held_layer(monkeypatch):
    """The channel layer's group_send held until released: it blocks the send loop's thread, so
    every later send stays queued behind it. Yields (entered, release)."""
    layer = get_channel_layer()
    original = layer.group_send
    entered, release = threading.Event(), threading.Event()

    async def group_send(group, message):
        entered.set()
        if not release.wait(5):
            raise TimeoutError("the held send was never released")
        return await original(group, message)

    monkeypatch.setattr(layer, "group_send", group_send)
    yield entered, release
    release.set()


def test_an_emit_does_not_wait_for_its_send_and_the_sends_go_out_in_order(subscriber, held_layer):
    org_id, received = subscriber
    entered, release = held_layer
    for n in range(3):
        broadcast.emit([_event(org_id, n)])  # returns while the first send is held
    assert entered.wait(5)
    release.set()
    assert [m["events"][0]["data"]["n"] for m in received(3)] == [0, 1, 2]


def test_a_send_queued_longer_than_the_send_timeout_is_dropped_and_counted(subscriber, held_layer, monkeypatch):
    org_id, received = subscriber
    entered, release = held_layer
    clock = [100.0]
    monkeypatch.setattr(send_loop, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    errors = metric("dashboard_broadcast_errors_total", stage="send")
    sent = metric("dashboard_events_sent_total", event="reading")

    broadcast.emit([_event(org_id, 0)])
    assert entered.wait(5)  # held in the layer
    broadcast.emit([_event(org_id, 1)])  # queued behind it
    clock[0] += broadcast.SEND_TIMEOUT_SECONDS + 1
    release.set()

    assert broadcast.sends_flush()
    assert received(1)[0]["events"][0]["data"]["n"] == 0
    assert metric("dashboard_events_sent_total", event="reading") == sent + 1
    assert metric("dashboard_broadcast_errors_total", stage="send") == errors + 1


def test_closing_makes_the_queued_sends_first(subscriber, held_layer):
    org_id, received = subscriber
    entered, release = held_layer
    broadcast.emit([_event(org_id, 1)])
    assert entered.wait(5)
    broadcast.emit([_event(org_id, 2)])
    release.set()

    broadcast.send_loop_close()  # the process is stopping: what its requests queued still goes out

    assert [m["events"][0]["data"]["n"] for m in received(2)] == [1, 2]
