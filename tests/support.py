"""Helpers for tests (import as `from tests.support import eventually`)."""

from __future__ import annotations

import asyncio


async def eventually(check, timeout: float = 10.0, interval: float = 0.02):
    """Poll an async or sync predicate until it returns a truthy value; return that value."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)
