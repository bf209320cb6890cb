"""Publishing: CloudEvents in structured mode, with publisher confirms and `mandatory`, and the broker's
answers mapped to the bus's errors (basic.return -> Unroutable; nack or lost connection ->
BusUnavailable, so the outbox relay keeps the event and tries again)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection
from aio_pika.exceptions import DeliveryError, PublishError

from hub.events import CloudEvent
from hub.messaging.bus.base import BusError, BusUnavailable, Unroutable
from hub.messaging.bus.delivery import PACK_CONTENT_TYPE
from hub.messaging.bus.rabbitmq.amqp import NETWORK_ERRORS
from hub.messaging.bus.rabbitmq.topology import Topology
from hub.messaging.redelivery import reason_of
from hub.observability import metrics

CONTENT_TYPE = "application/cloudevents+json"
PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)


def properties_of(event: CloudEvent) -> aiormq.spec.Basic.Properties:
    """The AMQP properties an event goes with (asyncapi.yaml), made directly: an aio-pika Message made
    only to be turned into them costs seven times as much per publish (bench/RESULTS.md)."""
    return aiormq.spec.Basic.Properties(
        content_type=CONTENT_TYPE,
        message_id=event.id,
        correlation_id=event.correlationid,
        message_type=event.type,
        timestamp=event.time,
        delivery_mode=PERSISTENT,
    )


def message_for(event: CloudEvent) -> aio_pika.Message:
    """The same as an aio-pika Message (tools and tests that hold messages)."""
    return aio_pika.Message(
        body=event.to_json(),
        content_type=CONTENT_TYPE,
        message_id=event.id,
        correlation_id=event.correlationid,
        type=event.type,
        timestamp=event.time,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


class Publisher:
    """The confirming channel and its exchange handles; None until `open`/`attach`, and again after
    `reset` (then publishing raises BusUnavailable)."""

    def __init__(
        self,
        topology: Topology,
        connection: Callable[[], AbstractRobustConnection],
        timeout: float,
    ) -> None:
        self._topology = topology
        self._connection = connection
        self._timeout = timeout
        self.channel: AbstractRobustChannel | None = None
        self.events: AbstractExchange | None = None
        self.dlx: AbstractExchange | None = None

    async def open(self) -> None:
        self.channel = await self._connection().channel(publisher_confirms=True, on_return_raises=True)

    async def attach(self) -> None:
        """(Re)take the exchange handles on the publishing channel (after each declare of the base)."""
        assert self.channel is not None
        # Exchange handles on the publishing channel (robust=False: restored by us, not aio-pika).
        self.events = await self._topology.declare_events_exchange(self.channel)
        self.dlx = await self._topology.declare_dlx(self.channel)

    def reset(self) -> None:
        self.channel = self.events = self.dlx = None

    async def publish(self, event: CloudEvent) -> None:
        error = (await self.publish_many([event]))[0]
        if error is not None:
            raise error

    async def publish_many(self, events: Sequence[CloudEvent]) -> list[BusError | None]:
        """A window of publishes in flight at once, each awaiting its own confirm: one round trip for
        the window instead of one per event. Each frame is queued for the socket without waiting for it
        to be written (aio-pika waits per message, which costs a pass of a busy event loop each); the
        channel's lock is taken in the order the publishes start, so the broker gets them in order."""
        exchange, publishing = self.events, self.channel
        self._connection()  # BusError when the bus was never started
        if exchange is None or publishing is None:
            raise BusUnavailable("the bus is not connected")
        if publishing.is_closed:  # reconnecting: the underlying channel would be awaited until it is back
            raise BusUnavailable("the broker is not reachable: the publishing channel is closed")
        try:
            # The concrete channel: its publish can queue a frame without waiting for the write.
            channel = cast(aiormq.Channel, await publishing.get_underlay_channel())
        except NETWORK_ERRORS as exc:
            raise BusUnavailable(f"the broker is not reachable: {reason_of(exc)}") from exc

        async def one(event: CloudEvent) -> BusError | None:
            if channel.is_closed:  # a frame queued on a dead channel would wait out the timeout
                return BusUnavailable("the broker is not reachable: the publishing channel is closed")
            try:
                await channel.basic_publish(
                    event.to_json(),
                    exchange=exchange.name,
                    routing_key=event.type,
                    properties=properties_of(event),
                    mandatory=True,
                    timeout=self._timeout,
                    wait=False,
                )
            except PublishError as exc:
                return Unroutable(f"no queue is bound for routing key {event.type!r} ({exc})")
            except DeliveryError as exc:
                return BusUnavailable(f"the broker refused the message (nack): {exc}")
            except NETWORK_ERRORS as exc:
                return BusUnavailable(f"the broker is not reachable: {reason_of(exc)}")
            return None

        outcomes = list(await asyncio.gather(*(one(e) for e in events)))
        metrics.published_events(events, outcomes)
        return outcomes

    async def publish_pack(self, queue: str, body: bytes, pack_id: str) -> None:
        """A pack to one queue, through the default exchange (the queue's name is the routing key)."""
        if self.channel is None:
            raise BusUnavailable("the bus is not connected")
        message = aio_pika.Message(
            body=body,
            content_type=PACK_CONTENT_TYPE,
            message_id=pack_id,
            type="hub.pack",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self.send(self.channel.default_exchange, message, queue)
        metrics.published(queue)

    async def publish_raw(self, routing_key: str, body: bytes, message_id: str | None = None) -> None:
        """Publish bytes as they are (tests and tools: e.g. a malformed message)."""
        message = aio_pika.Message(
            body=body, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await self.send(self.events, message, routing_key)

    async def send(self, exchange: AbstractExchange | None, message: aio_pika.Message, key: str) -> None:
        """Publish confirmed and mandatory to `exchange` (None: not connected)."""
        self._connection()  # BusError when the bus was never started
        if exchange is None:
            raise BusUnavailable("the bus is not connected")
        try:
            await exchange.publish(message, routing_key=key, mandatory=True, timeout=self._timeout)
        except PublishError as exc:
            raise Unroutable(f"no queue is bound for routing key {key!r} ({exc})") from exc
        except DeliveryError as exc:
            raise BusUnavailable(f"the broker refused the message (nack): {exc}") from exc
        except NETWORK_ERRORS as exc:
            raise BusUnavailable(f"the broker is not reachable: {reason_of(exc)}") from exc
