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

    async def turn(self) -> None:
        """Return at once unless the pipeline is behind; then once it has caught up, or at `max_wait`."""
        if self._max_wait <= 0 or not self._behind():
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait
        # Polled: "behind" is read off the relay and the consumers, which signal nothing themselves.
        while self._behind() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(POLL_SECONDS)
