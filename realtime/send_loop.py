"""The process's channel-layer sends: queued by the requests, sent in order by one event loop on a
thread of its own, while the requests go on.

`async_to_sync` from a thread without a loop (a gunicorn worker) runs each call on a new loop,
and channels_redis keeps its connections per loop: every send paid a new Redis connection. Under
daphne it ran on the server's own loop, behind the requests and frames that loop was serving.
Here the connections stay open and the loop does nothing else.

A request does not wait for its send: the cache work its events cause is done before the send is
queued (the dashboards that hear an event find every value exact), and TTN's webhook is answered
without the channel layer's round trips (about 0.7 ms of a 9 ms uplink, spent waiting on this
thread). The sends of a process go out one at a time, in the order they were queued, so a
dashboard hears one unit's events in order. A send that waited longer than the send timeout
behind others (a hung channel layer) is dropped, and the queue is bounded: the events of an
outage are counted as failed sends, not delivered minutes late or held in memory. Stopping, the
process waits for what is queued (`close`). A forked child starts its own loop (a thread does not
survive a fork).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine

logger = logging.getLogger("realtime.broadcast")

QUEUE_MAX = 10_000  # sends waiting; a healthy layer takes well under a millisecond each

# A queued send: given how long it waited in the queue, in seconds.
Send = Callable[[float], Coroutine[object, object, None]]


class SendLoop:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._queue: asyncio.Queue | None = None
        self._pid = 0

    def submit(self, send: Send) -> bool:
        """Queue `send` behind every send queued before it; False (not queued) when the queue is full."""
        with self._lock:
            loop, queue = self._started()
        if queue.qsize() >= QUEUE_MAX:  # read across threads: a bound, not an exact count
            return False
        loop.call_soon_threadsafe(queue.put_nowait, (time.monotonic(), send))
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until every send queued so far has been made; False if `timeout` passed first."""
        with self._lock:
            loop, queue, ours = self._loop, self._queue, self._pid == os.getpid()
        if loop is None or queue is None or not ours:
            return True
        done = asyncio.run_coroutine_threadsafe(queue.join(), loop)
        try:
            done.result(timeout)
        except TimeoutError:
            done.cancel()
            return False
        return True

    def close(self, timeout: float) -> None:
        """Make the queued sends, then stop the thread and close the channel layer's connections of
        its loop (the process is stopping; call it once nothing sends any more). A later send
        would start a new loop."""
        if not self.flush(timeout):
            logger.warning("The channel-layer sends still queued after %.1fs are dropped", timeout)
        with self._lock:
            loop, thread, ours = self._loop, self._thread, self._pid == os.getpid()
            self._loop = self._thread = self._queue = None
        if loop is None or thread is None or not ours:  # a forked child never ran its parent's thread
            return
        asyncio.run_coroutine_threadsafe(_stop(), loop)
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("The channel-layer send loop did not stop within %.1fs", timeout)
            return
        loop.close()  # channels_redis closes the Redis connections it opened on this loop here

    def _started(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue]:
        if self._loop is None or self._queue is None or self._pid != os.getpid():
            loop = asyncio.new_event_loop()
            queue: asyncio.Queue = asyncio.Queue()
            thread = threading.Thread(target=loop.run_forever, name="channel-layer-send", daemon=True)
            thread.start()
            asyncio.run_coroutine_threadsafe(self._drain(queue), loop)
            self._loop, self._thread, self._queue, self._pid = loop, thread, queue, os.getpid()
        return self._loop, self._queue

    async def _drain(self, queue: asyncio.Queue) -> None:
        while True:
            queued_at, send = await queue.get()
            try:
                await send(time.monotonic() - queued_at)
            except Exception:  # a send counts its own failures; this keeps the loop sending
                logger.exception("A channel-layer send failed unexpectedly")
            finally:
                queue.task_done()


async def _stop() -> None:
    """End the queue's task, then the loop."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
    asyncio.get_running_loop().stop()
