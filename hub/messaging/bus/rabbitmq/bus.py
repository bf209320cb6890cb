"""RabbitBus: the `Bus` on RabbitMQ. It owns the robust connection and the restore after a reconnect
(the one owner of it), and hands the rest to the parts: Topology, Publisher, Consumers, DeadLetters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

from hub.config import Settings
from hub.events import CloudEvent
from hub.messaging.bus.base import (
    Bus,
    BusError,
    BusUnavailable,
    DeadLetter,
    Handler,
    Progress,
    QueueStats,
    Route,
)
from hub.messaging.bus.delivery import pack
from hub.messaging.bus.rabbitmq.amqp import NETWORK_ERRORS, log
from hub.messaging.bus.rabbitmq.consumer import Consumers, QueueConsumer
from hub.messaging.bus.rabbitmq.dead_letters import DeadLetters
from hub.messaging.bus.rabbitmq.publisher import Publisher, message_for
from hub.messaging.bus.rabbitmq.topology import Topology
from hub.messaging.redelivery import reason_of


class RabbitBus(Bus):
    def __init__(
        self,
        settings: Settings,
        *,
        reconnect_interval: float = 2.0,
        timeout: float = 10.0,
    ) -> None:
        self._url = settings.broker_url
        self._reconnect_interval = reconnect_interval
        self._timeout = timeout
        self._conn: AbstractRobustConnection | None = None
        self._restoring: asyncio.Task[None] | None = None
        self._closing = False
        # Set after every successful restore (tests and health checks wait on it).
        self.restored = asyncio.Event()
        # The parts reach the connection through `_connection`, so they see it come and go.
        self._topology = Topology(settings, self._connection)
        self._publisher = Publisher(self._topology, self._connection, timeout)
        self._dead_letters = DeadLetters(
            settings, self._topology, self._publisher, self._connection, self._scratch_channel, timeout
        )
        self._consuming = Consumers(
            settings, self._topology, self._dead_letters, self._connection, self._scratch_channel, timeout
        )

    # -- names ---------------------------------------------------------------------------------------

    @property
    def exchange_name(self) -> str:
        return self._topology.exchange_name

    @property
    def dlx_name(self) -> str:
        return self._topology.dlx_name

    @property
    def dead_letter_queue(self) -> str:
        return self._topology.dead_letter_queue

    def physical(self, queue: str) -> str:
        return self._topology.physical(queue)

    def queue_arguments(self) -> dict[str, Any]:
        return self._topology.queue_arguments()

    # What tests look into: the declared routes and the tracked consumers.
    @property
    def _routes(self) -> dict[str, tuple[str, ...]]:
        return self._topology.routes

    @property
    def _consumers(self) -> dict[str, QueueConsumer]:
        return self._consuming.consumers

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._conn is not None:
            return
        self._closing = False
        try:
            conn = await aio_pika.connect_robust(
                self._url, timeout=self._timeout, reconnect_interval=self._reconnect_interval
            )
        except NETWORK_ERRORS as exc:
            raise BusUnavailable(f"cannot connect to the broker: {exc}") from exc
        self._conn = conn
        conn.reconnect_callbacks.add(self._on_reconnect)
        conn.close_callbacks.add(self._on_disconnect)
        try:
            await self._publisher.open()
            await self._declare_all()
        except NETWORK_ERRORS as exc:
            await self.close()
            raise BusUnavailable(f"cannot set up the bus: {exc}") from exc
        self.restored.set()

    async def close(self) -> None:
        self._closing = True
        if self._restoring is not None:
            self._restoring.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._restoring
            self._restoring = None
        await self._consuming.close()
        conn, self._conn = self._conn, None
        self._publisher.reset()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    def _connection(self) -> AbstractRobustConnection:
        if self._conn is None:
            raise BusError("the RabbitMQ bus is not started")
        return self._conn

    @contextlib.asynccontextmanager
    async def _scratch_channel(self) -> AsyncIterator[AbstractRobustChannel]:
        """A short-lived channel; closing it returns whatever it holds unacked to its queue."""
        try:
            ch = await self._connection().channel(publisher_confirms=False)
        except NETWORK_ERRORS as exc:
            raise BusUnavailable(f"the broker is not reachable: {reason_of(exc)}") from exc
        try:
            yield ch
        except NETWORK_ERRORS as exc:
            raise BusUnavailable(f"the broker is not reachable: {reason_of(exc)}") from exc
        finally:
            with contextlib.suppress(Exception):
                await ch.close()

    # -- topology ------------------------------------------------------------------------------------

    async def _declare_all(self) -> None:
        """Declare the base topology and every known route (start, reconnect), then take the exchange
        handles on the publishing channel."""
        assert self._publisher.channel is not None
        await self._topology.declare_known()
        await self._publisher.attach()

    async def declare(self, routes: Sequence[Route]) -> None:
        await self._topology.declare(routes)

    # -- publishing ----------------------------------------------------------------------------------

    message_for = staticmethod(message_for)

    async def publish(self, event: CloudEvent) -> None:
        await self._publisher.publish(event)

    async def publish_many(self, events: Sequence[CloudEvent]) -> list[BusError | None]:
        return await self._publisher.publish_many(events)

    async def publish_pack(self, queue: str, bodies: Sequence[bytes], pack_id: str) -> None:
        await self._publisher.publish_pack(self._topology.physical(queue), pack(bodies), pack_id)

    async def _publish_raw(self, routing_key: str, body: bytes, message_id: str | None = None) -> None:
        """Publish bytes as they are (tests and tools: e.g. a malformed message)."""
        await self._publisher.publish_raw(routing_key, body, message_id)

    # -- consuming -----------------------------------------------------------------------------------

    async def consume(self, queue: str, handler: Handler) -> None:
        await self._consuming.consume(queue, handler)

    def lagging(self) -> bool:
        return self._consuming.lagging()

    async def broadcast(self, patterns: Sequence[str], handler: Handler) -> None:
        await self._consuming.broadcast(patterns, handler)

    async def cancel(self, queue: str) -> None:
        await self._consuming.cancel(queue)

    async def drain(self, queue: str, handler: Handler) -> int:
        return await self._consuming.drain(queue, handler)

    # -- reconnect -----------------------------------------------------------------------------------

    def _on_disconnect(self, *_args: Any) -> None:
        if not self._closing:
            log.warning("rabbitmq bus: connection lost; reconnecting")
        self.restored.clear()

    def _on_reconnect(self, *_args: Any) -> None:
        # Called by aio-pika once the connection and its channels are back. Restore in a task, so a
        # failure here retries on its own and never blocks aio-pika's reconnect loop.
        if self._closing:
            return
        self.restored.clear()
        if self._restoring is not None and not self._restoring.done():
            self._restoring.cancel()
        self._restoring = asyncio.create_task(self._restore(), name="bus-restore")

    async def _restore(self) -> None:
        # Topology first, then a fresh channel and basic.consume per tracked consumer and listener.
        delay = self._reconnect_interval
        while not self._closing:
            try:
                await self._declare_all()
                await self._consuming.restart()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("rabbitmq bus: restore after reconnect failed (%s); retrying", reason_of(exc))
                await asyncio.sleep(delay)
                continue
            log.info("rabbitmq bus: topology and %d consumers restored", len(self._consuming.consumers))
            self.restored.set()
            return

    # -- dead letters and stats ----------------------------------------------------------------------

    async def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        return await self._dead_letters.letters(queue)

    async def replay(self, ids: Sequence[str] | None = None, progress: Progress | None = None) -> int:
        return await self._dead_letters.replay(ids, progress)

    async def stats(self) -> list[QueueStats]:
        return await self._dead_letters.stats()
