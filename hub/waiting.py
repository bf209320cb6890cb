"""Waiting with a deadline that never swallows a cancellation.

On Python 3.11, `asyncio.wait_for` can lose a cancellation that arrives just as its timeout fires
(it raises TimeoutError instead, and a loop that ignores timeouts then runs on: a task that cannot
be stopped). `asyncio.timeout` tells the two apart, so every timed wait in the hub goes through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


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


async def bounded(awaitable: Awaitable[T], seconds: float) -> T:
    """The awaitable's result within `seconds`, else TimeoutError at once.

    The work runs in a task of its own: on time-out it is cancelled and left to clean up in the
    background, so a driver that shields its clean-up (SQLAlchemy closing an asyncpg connection waits
    up to 2 s) cannot stretch the caller's bound. Cancelling the caller cancels the work too."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task in done:
        return task.result()
    task.cancel()
    task.add_done_callback(retrieve)
    raise TimeoutError(f"no answer within {seconds:g}s")


def retrieve(task: asyncio.Future[Any]) -> None:
    # The caller has gone on: read the outcome so asyncio does not warn that it was never retrieved.
    if not task.cancelled():
        task.exception()


class Periodic:
    """`work()` every `seconds` (or sooner when woken) in a task of its own. stop() ends it between
    rounds, never in one: a store driver cancelled mid-statement can leave its connection hanging."""

    def __init__(self, name: str, seconds: float, work: Callable[[], Awaitable[object]]):
        self._name = name
        self._seconds = seconds
        self._work = work
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace: float = 3.0) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:  # a round that hangs past the grace is cut after all
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self._stopping:
            await wait_event(self._wake, self._seconds)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self._work()
            except Exception as exc:  # the store may be away: the next round tries again
                log.warning("%s failed: %s", self._name, type(exc).__name__)
