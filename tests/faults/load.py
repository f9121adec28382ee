"""Load for the fault tests: dashboards polling stats, a TTN-like uplink sender, and an uplink held in flight."""

from __future__ import annotations

import http.client
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from tests.live import LiveServer
from tests.realtime.conftest import uplink


@dataclass(frozen=True)
class Sample:
    started: float  # time.monotonic()
    seconds: float
    status: int  # 0: no HTTP answer at all (refused, reset, timeout)
    body: bytes = b""


def p95(samples: list[Sample]) -> float:
    ordered = sorted(s.seconds for s in samples)
    assert ordered, "no samples"
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


class Load:
    """`clients` dashboards polling `paths` in turn, each waiting `pause` seconds between polls."""

    def __init__(self, server: LiveServer, *, cookie: str, paths: list[str], clients: int, pause: float = 0.0) -> None:
        self.server, self.cookie, self.paths, self.clients, self.pause = server, cookie, paths, clients, pause
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _client(self, offset: int) -> None:
        paths = itertools.cycle(self.paths[offset % len(self.paths) :] + self.paths[: offset % len(self.paths)])
        with httpx.Client(base_url=self.server.url, cookies={"sessionid": self.cookie}, timeout=10) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = client.get(next(paths))
                    status, body = response.status_code, response.content
                except httpx.HTTPError:
                    status, body = 0, b""
                self.samples.append(Sample(started, time.monotonic() - started, status, body))  # list.append is atomic
                self._stop.wait(self.pause)

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.started < end]


@dataclass(frozen=True)
class Post:
    f_cnt: int
    sent: float
    answered: float
    status: int  # 0: no HTTP answer
    body: dict
    payload: dict


class UplinkStream:
    """One TTN-like sender: an uplink every `every` seconds, each with its own frame counter and
    the temperature `temperature(f_cnt)`."""

    def __init__(
        self,
        server: LiveServer,
        *,
        secret: str,
        dev_eui: str,
        every: float = 0.05,
        temperature: Callable[[int], float] = lambda f_cnt: 4.0,
    ) -> None:
        self.server, self.secret, self.dev_eui, self.every = server, secret, dev_eui, every
        self.temperature = temperature
        self.posts: list[Post] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        f_cnt = 0
        with httpx.Client(base_url=self.server.url, headers={"X-Webhook-Secret": self.secret}, timeout=10) as client:
            while not self._stop.is_set():
                f_cnt += 1
                sent, payload = time.monotonic(), uplink(self.dev_eui, self.temperature(f_cnt), f_cnt=f_cnt)
                try:
                    response = client.post("/api/webhooks/ttn", json=payload)
                    status, body = response.status_code, response.json()
                except (httpx.HTTPError, ValueError):
                    status, body = 0, {}
                self.posts.append(Post(f_cnt, sent, time.monotonic(), status, body, payload))
                self._stop.wait(self.every)

    def __enter__(self) -> UplinkStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def after(self, moment: float) -> list[Post]:
        return [p for p in self.posts if p.sent >= moment]


class HeldUplink:
    """One webhook POST held in flight: its headers go out with `Expect: 100-continue`; the
    server's `100 Continue` says a worker (or daphne) has parsed them and is now handling the
    request, which then waits for the body until `finish()` sends it."""

    def __init__(self, server: LiveServer, *, secret: str, dev_eui: str, f_cnt: int) -> None:
        self.payload = uplink(dev_eui, 4.0, f_cnt=f_cnt)
        self._body = json.dumps(self.payload).encode()
        head = (
            f"POST /api/webhooks/ttn HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self._body)}\r\n"
            f"X-Webhook-Secret: {secret}\r\nExpect: 100-continue\r\n\r\n"
        )
        self._sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self._sock.sendall(head.encode())
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            chunk = self._sock.recv(1)
            assert chunk, f"connection closed before 100 Continue: {interim!r}"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100"), interim

    def finish(self) -> tuple[int, dict]:
        """Send the body; the final answer (status 0: none, the connection was dropped)."""
        try:
            self._sock.sendall(self._body)
            response = http.client.HTTPResponse(self._sock)
            response.begin()
            return response.status, json.loads(response.read() or b"{}")
        except (OSError, http.client.HTTPException, ValueError):
            return 0, {}
        finally:
            self._sock.close()
