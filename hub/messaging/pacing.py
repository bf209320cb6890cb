"""Pacing: a writer of new events waits, briefly, while this process is behind delivering the events
written before (the outbox relay had a full round, or a consumer holds more than a batch).

One process serves the API and runs the pipeline on one event loop: without pacing, callers that write
as fast as the hub answers take the loop from the relay and the consumers, and the backlog grows for as
long as the load lasts. Paced, the answer waits until the pipeline has caught up (at most
`max_wait` seconds, then the event is taken anyway: nothing is refused), so what the hub accepts is what
it can deliver. A broker outage is not "behind" (the relay's failing rounds clear it): the API keeps
accepting into the outbox then, as it always has.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

POLL_SECONDS = 0.005


class Pacing:
    def __init__(self, behind: Callable[[], bool], max_wait: float):
        self._behind = behind
        self._max_wait = max_wait
        # Resolved when the pipeline has caught up; one watch for every waiting writer. A poll per writer
        # resumed each writer's whole request (a few dozen frames) every 5 ms: when the hub was behind,
        # the waiting itself took the loop from the pipeline it waited for (bench/RESULTS.md).
        self._caught_up: asyncio.Future[None] | None = None
        self._watching: asyncio.Task[None] | None = None

    async def turn(self) -> None:
        """Return at once unless the pipeline is behind; then once it has caught up, or at `max_wait`."""
        if self._max_wait <= 0 or not self._behind():
            return
        caught_up = self._caught_up
        if caught_up is None or caught_up.done():
            caught_up = self._caught_up = asyncio.get_running_loop().create_future()
            self._watching = asyncio.create_task(self._watch(caught_up), name="pacing-watch")
            self._watching.add_done_callback(_settle(caught_up))
        # asyncio.wait leaves the shared future alone on a timeout or a cancelled writer.
        await asyncio.wait((caught_up,), timeout=self._max_wait)

    async def _watch(self, caught_up: asyncio.Future[None]) -> None:
        # Polled: "behind" is read off the relay and the consumers, which signal nothing themselves.
        while self._behind():  # noqa: ASYNC110
            await asyncio.sleep(POLL_SECONDS)
        caught_up.set_result(None)


def _settle(caught_up: asyncio.Future[None]) -> Callable[[asyncio.Task[None]], None]:
    """Whatever ends the watch (cancelled at shutdown, a failing `behind`) lets its writers go."""

    def done(watch: asyncio.Task[None]) -> None:
        if not watch.cancelled():
            watch.exception()  # retrieved: the writers go on either way
        if not caught_up.done():
            caught_up.set_result(None)

    return done
