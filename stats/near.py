"""Process-local copies of the fast path's keys, kept exact by Redis (CLIENT TRACKING).

On this 2-core machine one Redis round trip costs a cached request more than the whole bare
Django view does (bench/RESULTS.md: the lane reached 0.49 of the floor with its one round trip,
0.90 without it). Redis 6+ can tell a client when a key it read changes: a connection in RESP3
with `CLIENT TRACKING ON` receives an `invalidate` push for every key it has read, as soon as
any client modifies, deletes or flushes it. This module keeps what the lane read on such a
connection, one per process, and before serving anything from it reads every push that has
arrived (a non-blocking check of the socket; no round trip).

Why a copy is never older than Redis for any request that could know better:
- Pushes and replies share the one connection, in the order Redis executed what caused them:
  a change after a read reaches this process after that read's reply, and is applied before
  the copy is served again; a push that arrives before a reply is about an earlier read.
- Redis queues the push while it executes the change, and writes it before it processes any later
  command. Every change here is followed by its broadcast through the channel layer, a later
  command on the same Redis server (the recommended setup: cache and channel layer on one Redis,
  different databases), so the push is in this process's socket before any dashboard can hear of
  the change. Changes made by this process also drop their keys here at once (`forget`).
- Expiry is local: a copy lives until the key's PTTL, counted from before the read was sent.
- Only a master's pushes cover every change: writes go to the master, and a replica sees them
  late, by replication. Each (re)connect turns tracking on and sends `HELLO` (its reply names the
  server's role; `ROLE` is an admin command a restricted ACL user may not run) in the same round
  trip, and a connection not confirmed a master for `CONFIRM_SECONDS` is asked again before a
  copy is served: a silent partition (no error, no pushes) or a master demoted without closing
  its clients costs at most that long of possibly old copies, then errors.
- Anything that breaks the stream (connection error, reconnect, fork, a protocol surprise) drops
  every copy; a FLUSHDB/FLUSHALL arrives as a null push and drops them too.

Behind Sentinel the connection is redis-py's Sentinel-managed one: every (re)connect goes to the
master the sentinels name, which is where the cache and the channel layer reconnect too. After a
failover the old connection fails (master dead) or is closed (Sentinel's `CLIENT KILL TYPE
normal` on the demoted master); either way every copy is dropped before one is served again, and
tracking starts afresh on the new master.

Two readers use this: the lane (`stats.cache.read_for_session`), and the webhook's lookup of a
secret's organization (`stats.cache.read_tracked`, which keeps only keys that exist). Every write
and every other read goes to Redis as before. Errors are redis-py's own; `stats.cache` catches
them at its boundary.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import Counter
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

NEAR_CACHE = Counter(
    "dashboard_cache_near_total",
    "Fast-path keys served from this process's tracked copy (hit), read from Redis (fetched), "
    "dropped on a Redis invalidation (invalidated) or by this process's own change (forgotten)",
    ["outcome"],
)
NEAR_CACHE_FLUSHES = Counter(
    "dashboard_cache_near_flushes_total",
    "Times a process dropped all its tracked copies",
    ["reason"],
)
_HIT = NEAR_CACHE.labels("hit")
_FETCHED = NEAR_CACHE.labels("fetched")
_INVALIDATED = NEAR_CACHE.labels("invalidated")
_FORGOTTEN = NEAR_CACHE.labels("forgotten")

# Each key's value and PTTL, read together; KEYS (not ARGV) so that Redis tracks them.
READ_WITH_TTL = """
local out = {}
for i, key in ipairs(KEYS) do
  out[2 * i - 1] = redis.call('GET', key)
  out[2 * i] = redis.call('PTTL', key)
end
return out
"""

_NEVER = math.inf
# Copies are served only while the server confirmed this recently that it is a live master; past
# that a HELLO goes first. Its reply comes after every push Redis sent before it, so a connection
# that went silent (a partition that raised no error) or whose server became a replica cannot
# keep serving copies for long.
CONFIRM_SECONDS = 1.0
_ABSENT_SIZE = 64  # what an absent key's entry is counted as, against the size bound


class NotMaster(RedisConnectionError):
    """The tracked connection's server is not (or no longer) a master."""


class NearCache:
    """One tracked connection and what was read on it. Thread-safe; one per process and pool."""

    def __init__(
        self,
        make_connection: Callable[[], AbstractConnection],
        max_bytes: int,
        *,
        round_trip: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        """`round_trip` is told the duration of every Redis round trip (fetch or HELLO)."""
        self._make_connection = make_connection
        self._round_trip = round_trip
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._connection: AbstractConnection | None = None
        self._entries: dict[str, tuple[bytes | None, float]] = {}
        self._bytes = 0
        self._script_sha: str | None = None
        self._confirmed_at = -_NEVER

    # -- reads ------------------------------------------------------------------------------
    def get_many(self, keys: list[str], *, sync: bool = True) -> list[bytes | None]:
        """The values of `keys` (None where absent): copies where valid, the rest in one round
        trip on the tracked connection. `sync=False` skips reading pushes that arrived since the
        caller's previous call (a second read for the same request)."""
        with self._lock:
            try:
                connection = self._synced() if sync or self._connection is None else self._connection
                now = time.monotonic()
                found: dict[str, bytes | None] = {}
                missing: list[str] = []
                for key in keys:
                    entry = self._entries.get(key)
                    if entry is not None and entry[1] > now:
                        found[key] = entry[0]
                    else:
                        missing.append(key)
                if found:
                    _HIT.inc(len(found))
                if missing:
                    found.update(self._fetch(connection, missing))
                return [found[key] for key in keys]
            except BaseException:
                self._drop_all("error")
                raise

    def get_held(self, key: str) -> bytes | None:
        """The valid copy of `key` if this process holds one with a value, else None (nothing is
        fetched: the caller reads Redis itself and may then ask `get_many` to keep a copy)."""
        with self._lock:
            try:
                self._synced()
            except BaseException:
                self._drop_all("error")
                raise
            entry = self._entries.get(key)
            if entry is None or entry[0] is None or entry[1] <= time.monotonic():
                return None
            _HIT.inc()
            return entry[0]

    def seconds_left(self, key: str) -> float | None:
        """How long the copy of `key` has before its key expires in Redis (None: no copy, or no
        expiry); read right after `get_many`, it is the TTL left of the value just served."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[1] == _NEVER:
            return None
        return entry[1] - time.monotonic()

    def forget(self, keys: Iterable[str]) -> None:
        """Drop copies of keys this process has just changed (their push may still be on its way)."""
        with self._lock:
            for key in keys:
                if self._drop(key):
                    _FORGOTTEN.inc()

    def forget_matching(self, fragment: str) -> None:
        """Drop the copies whose key contains `fragment` (an organization-wide invalidation)."""
        with self._lock:
            for key in [key for key in self._entries if fragment in key]:
                self._drop(key)
                _FORGOTTEN.inc()

    def clear(self) -> None:
        with self._lock:
            self._drop_all("cleared")

    def close(self) -> None:
        """Drop every copy and close the connection (the process is stopping; a later read reconnects)."""
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():  # a fork's socket is the parent's
                self._connection.disconnect()
            self._connection = None
            self._clear()

    def __len__(self) -> int:
        return len(self._entries)

    # -- the connection ---------------------------------------------------------------------
    def _synced(self) -> AbstractConnection:
        """The tracked connection, with every push that has arrived applied."""
        if self._pid != os.getpid():  # a forked child: the socket is the parent's; the new
            self._connection = None  # connection's `_on_connect` drops the parent's copies
            self._pid = os.getpid()
        connection = self._connection
        if connection is None:
            connection = self._make_connection()
            connection._parser.set_invalidation_push_handler(self._on_invalidate)
            connection.register_connect_callback(self._on_connect)
            connection.connect()
            self._connection = connection
        try:
            while connection.can_read(0):
                message = connection.read_response(push_request=True)
                if not (isinstance(message, list) and message and message[0] in (b"invalidate", "invalidate")):
                    raise ResponseError(f"unexpected data on the tracked connection: {message!r:.80}")
        except RedisConnectionError:  # the server closed it (restart, CLIENT KILL, idle timeout)
            connection.disconnect()
            connection.connect()  # tracking on again, every copy dropped (`_on_connect`)
        if time.monotonic() - self._confirmed_at > CONFIRM_SECONDS:
            confirming = time.monotonic()
            connection.send_command("HELLO", 3)
            _require_master(connection, connection.read_response())  # pushes before it: applied
            self._confirmed_at = confirming
            self._round_trip(time.monotonic() - confirming)
        return connection

    def _on_connect(self, connection: AbstractConnection) -> None:
        """Every (re)connect: nothing read before is tracked on the new socket, which may be
        another server (Sentinel names the master anew on every connect)."""
        self._drop_all("reconnect")
        self._confirmed_at = -_NEVER
        confirming = time.monotonic()
        try:
            connection.send_packed_command(connection.pack_commands([("CLIENT", "TRACKING", "ON"), ("HELLO", 3)]))
            if connection.read_response() not in (b"OK", "OK"):
                raise ResponseError("CLIENT TRACKING ON refused")
            _require_master(connection, connection.read_response())
        except BaseException:
            # redis-py runs this callback after its handshake: a socket left open would read as
            # connected, and a retried connect would return it untracked.
            connection.disconnect()
            raise
        self._confirmed_at = confirming

    def _fetch(self, connection: AbstractConnection, keys: list[str]) -> dict[str, bytes | None]:
        sent_at = time.monotonic()
        reply = self._run(connection, keys)
        self._round_trip(time.monotonic() - sent_at)
        _FETCHED.inc(len(keys))
        values: dict[str, bytes | None] = {}
        for index, key in enumerate(keys):
            value, pttl = reply[2 * index], int(reply[2 * index + 1])
            values[key] = value
            expires = sent_at + pttl / 1000 if pttl >= 0 else _NEVER
            self._store(key, value, expires)
        return values

    def _run(self, connection: AbstractConnection, keys: list[str]) -> list:
        if self._script_sha is not None:
            connection.send_command("EVALSHA", self._script_sha, len(keys), *keys)
            try:
                return connection.read_response()
            except NoScriptError:
                pass
        connection.send_command("SCRIPT", "LOAD", READ_WITH_TTL)
        sha = connection.read_response()
        self._script_sha = sha.decode() if isinstance(sha, bytes) else sha
        connection.send_command("EVALSHA", self._script_sha, len(keys), *keys)
        return connection.read_response()

    # -- the copies -------------------------------------------------------------------------
    def _on_invalidate(self, message: list) -> list:
        """`[b"invalidate", [keys]]`, or `[b"invalidate", None]` after a flush. Returned: redis-py
        hands it back from `read_response(push_request=True)`."""
        keys = message[1]
        if keys is None:
            self._drop_all("flushed")
            return message
        for raw in keys:
            key = raw.decode() if isinstance(raw, bytes) else raw
            if self._drop(key):
                _INVALIDATED.inc()
        return message

    def _store(self, key: str, value: bytes | None, expires: float) -> None:
        self._drop(key)
        size = len(value) if value is not None else _ABSENT_SIZE
        if self._bytes + size > self._max_bytes:
            self._drop_all("full")
        self._entries[key] = (value, expires)
        self._bytes += size

    def _drop(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self._bytes -= len(entry[0]) if entry[0] is not None else _ABSENT_SIZE
        return True

    def _drop_all(self, reason: str) -> None:
        if reason == "error" and self._connection is not None:
            self._connection.disconnect()
            self._connection = None
        if self._entries:
            NEAR_CACHE_FLUSHES.labels(reason).inc()
        self._clear()

    def _clear(self) -> None:
        self._entries.clear()
        self._bytes = 0


def _require_master(connection: AbstractConnection, hello: object) -> None:
    """`hello`: the server's HELLO reply. A replica's pushes lag the changes made on its master."""
    role = (hello.get(b"role") or hello.get("role")) if isinstance(hello, dict) else None
    if role not in (b"master", "master"):
        raise NotMaster(f"the tracked connection's server is not a master ({role!r:.40}): {connection!r}")
