"""Tells live subscribers that a customer's NBAs may have changed (in this process)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager


class NbaFeed:
    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Queue[None]]] = defaultdict(set)

    def notify(self, customer_ids: Iterable[str]) -> None:
        for cid in customer_ids:
            for queue in self._listeners.get(cid, ()):
                if queue.empty():  # one pending wake-up is enough: the listener re-reads the state
                    queue.put_nowait(None)

    @asynccontextmanager
    async def listen(self, customer_id: str) -> AsyncIterator[asyncio.Queue[None]]:
        queue: asyncio.Queue[None] = asyncio.Queue(maxsize=1)
        self._listeners[customer_id].add(queue)
        try:
            yield queue
        finally:
            self._listeners[customer_id].discard(queue)
            if not self._listeners[customer_id]:
                del self._listeners[customer_id]
