"""Use case: next best actions from the decision engine (CM), batched, bounded by its timeout.

A decision engine that fails or does not answer in time is `SystemUnavailable` naming it: the API
answers with the rest of the data and that error, never INTERNAL."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from hub.core.calls import call
from hub.core.errors import SystemUnavailable
from hub.model import ContactEvent, DecisionRequest, NextBestAction, Offer
from hub.ports import DecisionEngine

log = logging.getLogger(__name__)
T = TypeVar("T")


class Decisions:
    def __init__(self, system: str, engine: DecisionEngine, timeout: float):
        self.system = system
        self._engine = engine
        self._timeout = timeout

    async def offers(self) -> Sequence[Offer]:
        return await self._call("offers", self._engine.offers())

    async def decide(
        self, requests: Sequence[DecisionRequest], pending: Sequence[ContactEvent] = ()
    ) -> list[list[NextBestAction]]:
        if not requests:
            return []
        answer = await self._call("decide", self._engine.decide(requests, pending))
        if len(answer) != len(requests):
            log.error(
                "decision engine %s answered %d of %d requests", self.system, len(answer), len(requests)
            )
            raise SystemUnavailable(f"system {self.system!r} gave a malformed answer", system=self.system)
        return answer

    async def decide_one(
        self, request: DecisionRequest, pending: Sequence[ContactEvent] = ()
    ) -> list[NextBestAction]:
        return (await self.decide([request], pending))[0]

    async def _call(self, what: str, awaitable: Awaitable[T]) -> T:
        return await call(self.system, self._timeout, what, awaitable)
