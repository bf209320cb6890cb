"""Waiting with a deadline that never swallows a cancellation.

On Python 3.11, `asyncio.wait_for` can lose a cancellation that arrives just as its timeout fires
(it raises TimeoutError instead, and a loop that ignores timeouts then runs on: a task that cannot
be stopped). `asyncio.timeout` tells the two apart, so every timed wait in the hub goes through here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until the event is set, at most `seconds`; True when it was set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
        return True
    except TimeoutError:
        return False


async def within(awaitable: Awaitable[object], seconds: float) -> None:
    """Await something for at most `seconds` (raises TimeoutError past that)."""
    async with asyncio.timeout(seconds):
        await awaitable
