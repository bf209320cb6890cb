"""Use case: next best actions from the decision engine (CM), batched, bounded by its timeout, cached.

A decision engine that fails or does not answer in time is `SystemUnavailable` naming it: the API
answers with the rest of the data and that error, never INTERNAL.

Decisions are cached per customer for a short time (`HUB_DECISION_CACHE_SECONDS`, 1 s: as long as CM's
own learning snapshot) and forgotten as soon as CM's data for the customer changes, in this process or
another (the change announcements). A decision asked while the customer changed is not kept."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable, Sequence
from typing import TypeVar

from cachetools import LRUCache, TTLCache

from hub.core import reads
from hub.core.calls import call
from hub.core.errors import SystemUnavailable
from hub.model import Channel, ContactEvent, DecisionRequest, NextBestAction, Offer
from hub.ports import DecisionEngine

log = logging.getLogger(__name__)
T = TypeVar("T")


Slot = tuple[Channel | None, int]  # (channel, limit) of a request, within one customer's entry


class Decisions:
    def __init__(
        self,
        system: str,
        engine: DecisionEngine,
        timeout: float,
        cache_seconds: float = 0.0,
        max_entries: int = 50_000,
    ):
        self.system = system
        self._engine = engine
        self._timeout = timeout
        self._cache: TTLCache[str, dict[Slot, list[NextBestAction]]] | None = (
            TTLCache(maxsize=max_entries, ttl=cache_seconds) if cache_seconds > 0 else None
        )
        # Bumped when a customer's CM data changes: an answer asked before then is not cached.
        self._epochs: LRUCache[str, int] = LRUCache(maxsize=max_entries)

    def forget(self, customer_ids: Iterable[str]) -> None:
        """CM's data for these customers changed: their cached decisions are stale."""
        for cid in customer_ids:
            self._epochs[cid] = self._epochs.get(cid, 0) + 1
            if self._cache is not None:
                self._cache.pop(cid, None)

    async def offers(self) -> Sequence[Offer]:
        reads.uncacheable()  # asked of the engine every time: an answer holding them is not kept
        return await self._call("offers", self._engine.offers())

    async def decide(
        self, requests: Sequence[DecisionRequest], pending: Sequence[ContactEvent] = ()
    ) -> list[list[NextBestAction]]:
        if not requests:
            return []
        cache = self._cache if not pending else None  # pending events: an answer for this call only
        if cache is None:
            reads.uncacheable()
        found: dict[int, list[NextBestAction]] = {}
        if cache is not None:
            for i, r in enumerate(requests):
                entry = cache.get(r.customer_id)
                hit = entry.get((r.channel, r.limit)) if entry is not None else None
                if hit is not None:
                    found[i] = hit
                    reads.note(cache, r.customer_id, entry)
        missing = [r for i, r in enumerate(requests) if i not in found]
        if missing:
            epochs = {r.customer_id: self._epochs.get(r.customer_id, 0) for r in missing}
            answer = await self._call("decide", self._engine.decide(missing, pending))
            if len(answer) != len(missing):
                log.error(
                    "decision engine %s answered %d of %d requests", self.system, len(answer), len(missing)
                )
                raise SystemUnavailable(f"system {self.system!r} gave a malformed answer", system=self.system)
            fresh = iter(answer)
            for i, r in enumerate(requests):
                if i in found:
                    continue
                found[i] = next(fresh)
                if cache is not None and self._epochs.get(r.customer_id, 0) == epochs[r.customer_id]:
                    entry = cache.setdefault(r.customer_id, {})
                    entry[(r.channel, r.limit)] = found[i]
                    reads.note(cache, r.customer_id, entry)
                else:
                    reads.uncacheable()  # the customer changed while CM answered
        return [found[i] for i in range(len(requests))]

    async def decide_one(
        self, request: DecisionRequest, pending: Sequence[ContactEvent] = ()
    ) -> list[NextBestAction]:
        return (await self.decide([request], pending))[0]

    async def _call(self, what: str, awaitable: Awaitable[T]) -> T:
        return await call(self.system, self._timeout, what, awaitable)
