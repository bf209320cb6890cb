"""The bus's names and its declared topology: the events exchange, the dead-letter exchange and
queue, and one quorum queue per route (see the package docstring for the arguments and why)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection

from hub.config import Settings
from hub.messaging.bus.base import BusUnavailable, Route
from hub.messaging.bus.rabbitmq.amqp import NETWORK_ERRORS

DEAD_LETTER_QUEUE = "dead-letters"


class Topology:
    """Names under `settings.bus_namespace`, the routes declared so far, and their idempotent
    declaration. Everything is declared robust=False: the bus restores it after a reconnect."""

    def __init__(self, settings: Settings, connection: Callable[[], AbstractRobustConnection]) -> None:
        self._settings = settings
        self._ns = settings.bus_namespace
        self._connection = connection
        # queue -> its patterns, for every route declared so far (declared again after a reconnect).
        self.routes: dict[str, tuple[str, ...]] = {}

    # -- names ---------------------------------------------------------------------------------------

    @property
    def exchange_name(self) -> str:
        return f"{self._ns}.events"

    @property
    def dlx_name(self) -> str:
        return f"{self._ns}.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self._ns}.{DEAD_LETTER_QUEUE}"

    def physical(self, queue: str) -> str:
        return f"{self._ns}.{queue}"

    def logical(self, physical: str) -> str:
        prefix = f"{self._ns}."
        return physical[len(prefix) :] if physical.startswith(prefix) else physical

    def queue_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self._settings.delivery_limit,
            "x-dead-letter-exchange": self.dlx_name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    # -- declaring -----------------------------------------------------------------------------------

    async def declare_events_exchange(self, ch: AbstractRobustChannel) -> AbstractExchange:
        return await ch.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True, robust=False
        )

    async def declare_dlx(self, ch: AbstractRobustChannel) -> AbstractExchange:
        return await ch.declare_exchange(
            self.dlx_name, aio_pika.ExchangeType.FANOUT, durable=True, robust=False
        )

    async def declare_known(self) -> None:
        """Declare the base topology and every known route (start and reconnect)."""
        async with self._connection().channel(publisher_confirms=False) as ch:
            await self._declare_base(ch)
            for queue, patterns in self.routes.items():
                await self._declare_route(ch, queue, patterns)

    async def declare(self, routes: Sequence[Route]) -> None:
        """Remember the routes (their patterns add up) and declare them with the base topology."""
        for route in routes:
            known = self.routes.get(route.queue, ())
            self.routes[route.queue] = tuple(dict.fromkeys((*known, *route.patterns)))
        try:
            async with self._connection().channel(publisher_confirms=False) as ch:
                await self._declare_base(ch)
                for route in routes:
                    await self._declare_route(ch, route.queue, self.routes[route.queue])
        except NETWORK_ERRORS as exc:
            raise BusUnavailable(f"cannot declare the topology: {exc}") from exc

    async def _declare_base(self, ch: AbstractRobustChannel) -> None:
        await self.declare_events_exchange(ch)
        dlx = await self.declare_dlx(ch)
        dlq = await ch.declare_queue(
            self.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}, robust=False
        )
        await dlq.bind(dlx, routing_key="", robust=False)

    async def _declare_route(self, ch: AbstractRobustChannel, queue: str, patterns: tuple[str, ...]) -> None:
        q = await ch.declare_queue(
            self.physical(queue), durable=True, arguments=self.queue_arguments(), robust=False
        )
        for pattern in patterns:
            await q.bind(self.exchange_name, routing_key=pattern, robust=False)
