"""A minimal asyncio HTTP/1.1 client: keep-alive when the server allows it, reconnect when not.

httpx costs ~0.5 ms of CPU per request, which on a shared 2-core machine would be the bottleneck
instead of the server. This does the least a load generator needs: one request at a time on a
connection, Content-Length or chunked bodies, and a fresh connection after `Connection: close`
(gunicorn's sync workers close after every response).

`close_after_request=True` is for a server that answers one request per connection (gunicorn's
sync workers): the client says so and ends its side as soon as the request is sent. Since
gunicorn 26 a sync worker, after each response, waits (up to 2 s) for its peer to close before it
takes the next connection. In production that peer is nginx, which closes within microseconds; a
Python client closes only when its event loop gets round to it, which on a busy loop is
milliseconds, and every such millisecond was a millisecond the server's worker could not serve
anyone. Ending the request side at once lets the worker go as it does behind nginx.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass


class HTTPError(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def unverified_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Connection:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        headers: dict[str, str] | None = None,
        tls: bool = False,
        close_after_request: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self._close_after_request = close_after_request
        if close_after_request:
            headers = {**(headers or {}), "Connection": "close"}
        # The bench's own topology on loopback, with its self-signed certificate: not verified.
        self._tls = unverified_tls() if tls else None
        base = {"Host": f"{host}:{port}", **(headers or {})}
        self._base = "".join(f"{name}: {value}\r\n" for name, value in base.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.connects = 0

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port, ssl=self._tls)
        self.connects += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(
        self, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head = f"{method} {path} HTTP/1.1\r\n{self._base}{extra}"
        if body or method in {"POST", "PUT", "PATCH"}:
            head += f"Content-Length: {len(body)}\r\n"
        payload = (head + "\r\n").encode() + body
        for attempt in (1, 2):
            if self._writer is None:
                await self._open()
            try:
                self._writer.write(payload)
                if self._close_after_request:
                    self._writer.write_eof()  # the request is all this connection will carry
                return await self._read_response()
            except (ConnectionError, asyncio.IncompleteReadError, HTTPError):
                self.close()
                # A kept-alive connection the server closed meanwhile: retry once on a new one.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _read_response(self) -> Response:
        reader = self._reader
        status_line = await reader.readline()
        if not status_line:
            raise HTTPError("connection closed before the response")
        parts = status_line.split(b" ", 2)
        status = int(parts[1])
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        else:
            body = await reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body)

    async def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int((await self._reader.readline()).split(b";")[0], 16)
            if size == 0:
                await self._reader.readline()
                return b"".join(chunks)
            chunks.append(await self._reader.readexactly(size))
            await self._reader.readline()
