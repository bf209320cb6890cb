"""Cross-request batching: loads that concurrent requests ask for in the same pass of the event loop go
to the backend as one batch (a DataLoader shared by the requests, without a cache).

The contacts a group commit starts together (hub.core.contacts) resume their callers in one pass, and
each answer then wants its customer's view and NBAs: one read per system for the group instead of one
per caller. Only for answers that are never kept (mutations): the batch notes no reads for a kept
answer (hub.core.reads). It runs in the context of the request that asked first (its trace holds the
batch's calls to the systems); a failure reaches each load of the batch.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from hub.core import reads

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

LoadMany = Callable[[list[K]], Awaitable[Sequence[V | BaseException]]]


class Coalescer(Generic[K, V]):
    def __init__(self, load_many: LoadMany[K, V]):
        self._load_many = load_many
        self._pending: dict[K, list[asyncio.Future[V]]] = {}
        self._running: set[asyncio.Task[None]] = set()  # held: a task nobody references may be collected

    def load(self, key: K) -> Awaitable[V]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._dispatch)
        self._pending.setdefault(key, []).append(future)
        return future

    def _dispatch(self) -> None:
        batch, self._pending = self._pending, {}
        context = contextvars.copy_context()  # the first asker's (call_soon ran this in it)
        context.run(reads.recording, None)
        task = asyncio.create_task(self._run(batch), context=context)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, batch: dict[K, list[asyncio.Future[V]]]) -> None:
        keys = list(batch)
        try:
            values = await self._load_many(keys)
        except BaseException as exc:  # cancelled too: no load is left waiting
            for futures in batch.values():
                for future in futures:
                    _fail(future, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for key, value in zip(keys, values, strict=True):
            for future in batch[key]:
                if isinstance(value, BaseException):
                    _fail(future, value)
                elif not future.done():  # a caller that went away cancelled its load
                    future.set_result(value)


def _fail(future: asyncio.Future[V], exc: BaseException) -> None:
    if future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)
