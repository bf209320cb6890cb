"""Use case: next best actions from the decision engine (CM), batched, bounded by its timeout.

A decision engine that fails or does not answer in time is `SystemUnavailable` naming it: the API
answers with the rest of the data and that error, never INTERNAL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from hub.core.errors import SystemUnavailable
from hub.model import ContactEvent, DecisionRequest, NextBestAction, Offer
from hub.ports import AdapterError, DecisionEngine

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

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except TimeoutError:
            log.warning("decision engine %s: %s took over %.1fs", self.system, what, self._timeout)
            raise SystemUnavailable(
                f"system {self.system!r} is unavailable (no answer within {self._timeout:g}s)",
                system=self.system,
            ) from None
        except AdapterError as exc:
            log.warning("decision engine %s: %s failed: %s", self.system, what, exc)
            raise SystemUnavailable(f"{exc}", system=self.system) from None
        except Exception as exc:
            log.warning("decision engine %s: %s failed", self.system, what, exc_info=exc)
            raise SystemUnavailable(
                f"system {self.system!r} is unavailable ({type(exc).__name__})", system=self.system
            ) from None
