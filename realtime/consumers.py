"""The organization's live feed: members join its group and receive its events."""

from __future__ import annotations

import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from prometheus_client import Counter, Gauge

from stats.services import principal_get

from . import broadcast

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_CHATTY = 4408
# The channel layer's Redis failed: the dashboard reconnects (with backoff) and resyncs. (Daphne
# refuses the standard 1011/1013 from an application: only 1000 and 3000-4999.)
CLOSE_TRY_AGAIN_LATER = 4503
# Clients only ever send pings; anything beyond this per connection is abuse.
MAX_CLIENT_MESSAGES = 120
MAX_CLIENT_MESSAGE_BYTES = 1024

# Several daphne processes (PROMETHEUS_MULTIPROC_DIR): /metrics sums the live ones' connections.
WS_CONNECTIONS = Gauge(
    "dashboard_websocket_connections", "Open dashboard WebSocket connections", multiprocess_mode="livesum"
)
WS_REJECTED = Counter("dashboard_websocket_rejected_total", "Refused WebSocket connections", ["reason"])
for _reason in ("anonymous", "not_member"):
    WS_REJECTED.labels(_reason)


# This process's consumers that joined their organization's group and have not left it yet: a
# stopping server waits until every closed socket's consumer has left (dashboard_project/asgi_server.py).
subscribed: set[str] = set()


class OrganizationConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None
    received = 0

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        try:
            await super().__call__(scope, receive, send)
        except broadcast.LAYER_ERRORS as exc:  # the receive loop lost the channel layer's Redis
            broadcast.layer_failed("receive", exc)
            if self.group is not None:
                WS_CONNECTIONS.dec()
                self.group = None
            subscribed.discard(self.channel_name)
            await self.close(code=CLOSE_TRY_AGAIN_LATER)

    async def connect(self) -> None:
        user = self.scope.get("user")
        org_id = self.scope["url_route"]["kwargs"]["org_id"]
        # Accept first so the close code reaches the browser (a refused handshake carries none).
        await self.accept()
        if user is None or not user.is_authenticated:
            WS_REJECTED.labels("anonymous").inc()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        principal = await database_sync_to_async(principal_get)(user_id=user.pk)
        if principal is None or principal.role_in(org_id) is None:
            WS_REJECTED.labels("not_member").inc()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        group = broadcast.group_name(org_id)
        if not await broadcast.layer_call("subscribe", self.channel_layer.group_add(group, self.channel_name)):
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        self.group = group
        subscribed.add(self.channel_name)
        WS_CONNECTIONS.inc()
        await self.send_json({"type": "hello", "data": {"organizationId": str(org_id)}})

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            WS_CONNECTIONS.dec()
            group, self.group = self.group, None
            try:
                await broadcast.layer_call("unsubscribe", self.channel_layer.group_discard(group, self.channel_name))
            finally:
                subscribed.discard(self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: object) -> None:
        self.received += 1
        size = len(text_data or "") + len(bytes_data or b"")
        if self.received > MAX_CLIENT_MESSAGES or size > MAX_CLIENT_MESSAGE_BYTES:
            await self.close(code=CLOSE_TOO_CHATTY)
            return
        if text_data and text_data.strip() == '{"type":"ping"}':
            await self.send_json({"type": "pong", "data": {}})

    async def dashboard_events(self, message: dict) -> None:
        for event in message["events"]:
            await self.send_json(event)
