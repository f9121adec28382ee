"""Daphne, stopping gracefully: `python -m dashboard_project.asgi_server [daphne's arguments]`.

Daphne's own stop cancels every application instance at once and lets the reactor drop the
connections: a request in flight gets no answer and a WebSocket client no close frame (1006). A
request whose body was still arriving made its shutdown hook raise (KeyError) before it waited
for anything; the reactor then stopped under requests whose threads were waiting on its event
loop, and the process hung at exit, joining those threads forever. Here the first SIGTERM or
SIGINT (`dashboard_project.shutdown.on_stop_signal`) starts a drain, before the reactor stops:
1. the listening sockets close (new connections are refused; a restart can bind at once);
2. every open WebSocket is closed with 1001 (going away): the page reconnects with backoff and
   refetches everything once it is back (stats/static/stats/dashboard.js); its consumer leaves
   the organization's group, then waits for its channel-layer receive, which channels_redis
   does not cut short (its blocking pop of 1 s, realtime/layer.py, and at most one more);
3. requests in flight finish, and their connections close after the answer (`Connection: close`);
4. what is still running after SHUTDOWN_GRACE_SECONDS is cancelled and awaited, as daphne does (a
   request in synchronous code finishes that part first: a thread cannot be interrupted).
Then the reactor stops, the process's own connections close (`close_process_resources`) and the
process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from daphne.cli import CommandLineInterface  # first: daphne installs Twisted's asyncio reactor
from daphne.http_protocol import WebRequest
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import defer, reactor
from twisted.internet.interfaces import IListeningPort

from dashboard_project.shutdown import close_process_resources, on_stop_signal

logger = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
_POLL_SECONDS = 0.05
_CANCELLED_WAIT_SECONDS = 1.0


class GracefulServer(Server):
    def run(self) -> None:
        self._ports: list[IListeningPort] = []
        # Ours instead of Twisted's: drain on SIGINT too when the shell started us with it
        # ignored, and ignore repeated signals (see on_stop_signal).
        self.signal_handlers = False
        on_stop_signal(lambda: reactor.callFromThread(self.stop))
        super().run()

    def listen_success(self, port: IListeningPort) -> None:
        self._ports.append(port)
        super().listen_success(port)

    async def handle_reply(self, protocol: object, message: dict) -> None:
        # A WebSocket the drain is closing takes no more events (autobahn raises on a send to a
        # closing connection, failing the consumer): the page refetches everything on reconnect.
        if (
            message["type"] == "websocket.send"
            and isinstance(protocol, WebSocketProtocol)
            and protocol.state in (protocol.STATE_CLOSING, protocol.STATE_CLOSED)
        ):
            return
        await super().handle_reply(protocol, message)

    def kill_all_applications(self) -> defer.Deferred:
        """Daphne's "before shutdown" trigger: drain, then cancel what outlived the grace period."""
        drained = defer.Deferred.fromFuture(asyncio.ensure_future(self._drain()))
        # Twisted would swallow the error (daphne sends its log nowhere): log it, then stop anyway.
        return drained.addErrback(lambda failure: logger.error("Drain failed:\n%s", failure.getTraceback()))

    async def _drain(self) -> None:
        from django.conf import settings  # the application (and so Django) is loaded by now

        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.SHUTDOWN_GRACE_SECONDS
        for port in self._ports:
            port.stopListening()
        while (busy := self._wind_down()) and loop.time() < deadline:
            await asyncio.sleep(_POLL_SECONDS)
        if busy:
            busy_ones = [p for p, d in self.connections.items() if not _finished(p, d)]
            logger.warning("Still busy after the grace period, cancelled: %s", ", ".join(map(repr, busy_ones)))
        else:
            logger.info("Drained: every request answered, every WebSocket closed")
        # Drained, what is left are consumers of closed sockets, out of their group, in their
        # channel-layer receive; otherwise also what outlived the grace period.
        await self._cancel([d["application_instance"] for d in self.connections.values() if not _done(d)])

    @staticmethod
    async def _cancel(instances: list[asyncio.Future]) -> None:
        for instance in instances:
            instance.cancel()
        if instances:
            await asyncio.wait(instances, timeout=_CANCELLED_WAIT_SECONDS)

    def _wind_down(self) -> int:
        """One pass: close what can be closed now; how many connections are still busy.

        Idle keep-alive connections are left open: a request that arrives on one during the
        drain is answered (with `Connection: close`); the reactor closes the rest once drained.
        """
        from realtime.consumers import subscribed

        busy = len(subscribed)  # consumers that have not left their group yet
        for protocol, details in list(self.connections.items()):
            if _finished(protocol, details):
                continue
            busy += 1
            if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN:
                # sendClose() refuses 1001 (a code for endpoints, which is what we are).
                protocol.sendCloseFrame(code=CLOSE_GOING_AWAY, reasonUtf8=b"server stopping")
            elif isinstance(protocol, WebRequest) and getattr(protocol, "channel", None) is not None:
                protocol.channel.persistent = False  # Twisted closes it once the answer is written
                if not protocol.startedWriting:
                    protocol.responseHeaders.setRawHeaders(b"Connection", [b"close"])
        return busy


def _finished(protocol: object, details: dict) -> bool:
    """Disconnected, and its application done; for a WebSocket, disconnected is enough (what its
    consumer has left to do after leaving its group is counted apart, in `subscribed`)."""
    if "disconnected" not in details:
        return False
    return isinstance(protocol, WebSocketProtocol) or _done(details)


def _done(details: dict) -> bool:
    instance = details.get("application_instance")  # absent while a request's body is arriving
    return instance is None or instance.done()


class GracefulCommandLineInterface(CommandLineInterface):
    server_class = GracefulServer


def main(argv: list[str]) -> None:
    GracefulCommandLineInterface().run(argv)
    close_process_resources()


if __name__ == "__main__":
    main(sys.argv[1:])
