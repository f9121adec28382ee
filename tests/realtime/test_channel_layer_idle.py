"""An open dashboard's consumer waits on the channel layer for as long as nothing happens: a quiet
organization must not cost it its WebSocket.

channels-redis waits for a message with a blocking pop of `brpop_timeout` (5 s) and loops; redis-py
8 reads every reply with a 5 s socket timeout by default, so the pop's own empty answer lost the
race and the receive raised TimeoutError: every idle consumer crashed (close 1011) after ~5 s.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from channels.layers import get_channel_layer


def test_a_receive_idle_longer_than_the_blocking_pop_still_gets_the_next_message():
    layer = get_channel_layer()
    idle = layer.brpop_timeout + 1  # the quiet period under test, not a wait for something

    async def scenario() -> dict:
        channel = await layer.new_channel()

        async def send_after_the_quiet() -> None:
            await asyncio.sleep(idle)
            await layer.send(channel, {"type": "late.event"})

        sender = asyncio.create_task(send_after_the_quiet())
        try:
            return await asyncio.wait_for(layer.receive(channel), idle + 10)
        finally:
            await sender

    # On a thread of its own: the browser tests' Playwright loop may still run on this one.
    with ThreadPoolExecutor(1) as thread:
        assert thread.submit(asyncio.run, scenario()).result() == {"type": "late.event"}
