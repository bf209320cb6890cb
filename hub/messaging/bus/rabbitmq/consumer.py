"""Consuming: one channel per queue with prefetch, one worker task per queue (queue order, one
message at a time, acked after the handler), retries held as delayed nacks, dead letters through
DeadLetters; broadcast listeners on exclusive queues; and drain (basic.get) for batch flows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustQueue,
)
from aio_pika.exceptions import ChannelInvalidStateError, ChannelNotFoundEntity

from hub.config import Settings
from hub.events import CloudEvent
from hub.messaging.bus.base import BatchHandler, BusError, Handler
from hub.messaging.bus.delivery import deliver, read
from hub.messaging.bus.rabbitmq.amqp import NETWORK_ERRORS, ScratchChannel, log, settle
from hub.messaging.bus.rabbitmq.dead_letters import DeadLetters
from hub.messaging.bus.rabbitmq.topology import Topology
from hub.messaging.redelivery import RedeliveryPolicy
from hub.observability import metrics
from hub.waiting import within

Retry = Callable[[AbstractIncomingMessage, float], None]


@dataclass(eq=False)
class Listener:
    """A broadcast subscription: a server-named, exclusive, auto-delete queue for this process."""

    patterns: tuple[str, ...]
    handler: Handler
    channel: AbstractRobustChannel | None = None


@dataclass(eq=False)
class QueueConsumer:
    queue: str
    handler: Handler
    inbox: asyncio.Queue[AbstractIncomingMessage] = field(default_factory=asyncio.Queue)
    channel: AbstractRobustChannel | None = None
    tag: str | None = None
    worker: asyncio.Task[None] | None = None
    delayed: set[asyncio.Task[None]] = field(default_factory=set)
    in_hand: int = 0  # messages taken from the inbox and being applied


class Consumers:
    """The process's queue consumers and broadcast listeners, and the redelivery of failed messages."""

    def __init__(
        self,
        settings: Settings,
        topology: Topology,
        dead_letters: DeadLetters,
        connection: Callable[[], AbstractRobustConnection],
        scratch_channel: ScratchChannel,
        timeout: float,
    ) -> None:
        self._settings = settings
        self._policy = RedeliveryPolicy(settings.delivery_limit, settings.retry_backoff_seconds)
        self._topology = topology
        self._dead_letters = dead_letters
        self._connection = connection
        self._scratch_channel = scratch_channel
        self._timeout = timeout
        self.consumers: dict[str, QueueConsumer] = {}
        self.listeners: list[Listener] = []

    # -- consumers -----------------------------------------------------------------------------------

    async def consume(self, queue: str, handler: Handler) -> None:
        if queue in self.consumers:
            raise BusError(f"queue {queue!r} already has a consumer")
        consumer = QueueConsumer(queue=queue, handler=handler)
        self.consumers[queue] = consumer
        consumer.worker = asyncio.create_task(self._work(consumer), name=f"bus-consumer:{queue}")
        try:
            await self._start_consumer(consumer)
        except ChannelNotFoundEntity as exc:
            await self.cancel(queue)
            raise BusError(f"queue {queue!r} is not declared") from exc
        except NETWORK_ERRORS as exc:
            # Stays registered: the reconnect restores it.
            log.warning("rabbitmq bus: consumer of %r starts after the next reconnect: %s", queue, exc)

    async def _start_consumer(self, consumer: QueueConsumer) -> None:
        ch = await self._connection().channel(publisher_confirms=False)
        consumer.channel = ch
        await ch.set_qos(prefetch_count=self._settings.prefetch)
        # Passive: consuming never creates a queue (declare does), and robust=False: restored by us.
        q: AbstractRobustQueue = await ch.declare_queue(
            self._topology.physical(consumer.queue), passive=True, robust=False
        )

        async def deliver(message: AbstractIncomingMessage) -> None:
            consumer.inbox.put_nowait(message)

        consumer.tag = await q.consume(deliver, robust=False)

    async def _stop_channel(self, consumer: QueueConsumer) -> None:
        """Close the consumer's channel: the broker requeues what it holds unacked."""
        for task in list(consumer.delayed):
            task.cancel()
        consumer.delayed.clear()
        while not consumer.inbox.empty():
            consumer.inbox.get_nowait()
        ch, consumer.channel, consumer.tag = consumer.channel, None, None
        if ch is not None:
            with contextlib.suppress(Exception):
                await within(ch.close(), self._timeout)

    async def cancel(self, queue: str) -> None:
        consumer = self.consumers.pop(queue, None)
        if consumer is None:
            return
        if consumer.worker is not None:
            consumer.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer.worker
        await self._stop_channel(consumer)

    def lagging(self) -> bool:
        """A consumer holds a full batch delivered and not yet applied (in hand and in its inbox): more
        may wait on the broker, behind the prefetch. (The inbox alone, beside the batch in hand, never
        held more than a batch: the broker delivers at most the prefetch, 200, unacked.)"""
        full = max(1, min(self._settings.consume_batch, self._settings.prefetch))
        return any(c.in_hand + c.inbox.qsize() >= full for c in self.consumers.values())

    # -- broadcast listeners -------------------------------------------------------------------------

    async def broadcast(self, patterns: Sequence[str], handler: Handler) -> None:
        listener = Listener(tuple(patterns), handler)
        self.listeners.append(listener)
        try:
            await self._start_listener(listener)
        except NETWORK_ERRORS as exc:
            log.warning("rabbitmq bus: broadcast listener starts after the next reconnect: %s", exc)

    async def _start_listener(self, listener: Listener) -> None:
        ch = await self._connection().channel(publisher_confirms=False)
        listener.channel = ch
        # Exclusive queues die with the connection: the restore after a reconnect declares a new one.
        q = await ch.declare_queue("", exclusive=True, auto_delete=True, durable=False, robust=False)
        for pattern in listener.patterns:
            await q.bind(self._topology.exchange_name, routing_key=pattern, robust=False)

        async def hear(message: AbstractIncomingMessage) -> None:
            try:
                await listener.handler(CloudEvent.from_json(message.body))
            except Exception:  # at most once by contract: log and go on
                log.exception("rabbitmq bus: broadcast listener failed on %s", message.message_id)

        await q.consume(hear, no_ack=True, robust=False)

    async def _stop_listener(self, listener: Listener) -> None:
        ch, listener.channel = listener.channel, None
        if ch is not None:
            with contextlib.suppress(Exception):
                await within(ch.close(), self._timeout)

    # -- lifecycle (driven by the bus) ---------------------------------------------------------------

    async def restart(self) -> None:
        """After a reconnect (topology already restored): a fresh channel and basic.consume for every
        tracked consumer, and a new exclusive queue for every listener."""
        for consumer in list(self.consumers.values()):
            await self._stop_channel(consumer)
            await self._start_consumer(consumer)
        for listener in self.listeners:
            await self._stop_listener(listener)
            await self._start_listener(listener)

    async def close(self) -> None:
        for queue in list(self.consumers):
            await self.cancel(queue)
        for listener in self.listeners:
            await self._stop_listener(listener)
        self.listeners.clear()

    # -- delivering ----------------------------------------------------------------------------------

    async def _work(self, consumer: QueueConsumer) -> None:
        def retry(message: AbstractIncomingMessage, delay: float) -> None:
            self._retry_later(consumer, message, delay)

        handler = consumer.handler
        size = max(1, self._settings.consume_batch) if isinstance(handler, BatchHandler) else 1
        while True:
            consumer.in_hand = 0
            # What is ready now, up to a batch: never waits for more to arrive.
            messages = [await consumer.inbox.get()]
            while len(messages) < size and not consumer.inbox.empty():
                messages.append(consumer.inbox.get_nowait())
            consumer.in_hand = len(messages)
            messages = [m for m in messages if not _stale(m)]  # their channel died: redelivered
            try:
                held = bool(consumer.delayed)
                together = len(messages) > 1
                if together and await self._process_together(consumer.queue, handler, messages, held):
                    continue
                for message in messages:
                    await self._process(consumer.queue, handler, message, retry)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("rabbitmq bus: settling a message of %r failed", consumer.queue)

    def _retry_later(self, consumer: QueueConsumer, message: AbstractIncomingMessage, delay: float) -> None:
        # Held unacked (it keeps its prefetch slot) while the next messages flow on, then requeued.
        async def nack_later() -> None:
            try:
                await asyncio.sleep(delay)
            finally:
                await settle(message.nack(requeue=True))

        task = asyncio.create_task(nack_later())
        consumer.delayed.add(task)
        task.add_done_callback(consumer.delayed.discard)

    async def _process_together(
        self, queue: str, handler: Handler, messages: list[AbstractIncomingMessage], held: bool
    ) -> int:
        """Apply messages as one batch and ack them all; how many events they held, 0 (nothing settled)
        when it failed."""
        assert isinstance(handler, BatchHandler)
        try:
            events = [e for m in messages for e in read(m.body)]
            await handler.batch(events)
        except asyncio.CancelledError:
            raise  # unsettled: closing the channel returns them
        except Exception as exc:
            log.info("rabbitmq bus: a batch of %d on %r failed, delivering one by one: %s",
                     len(messages), queue, exc)
            return 0
        if held:  # one by one: `multiple` would also ack the messages held for a retry
            for message in messages:
                await settle(message.ack())
        else:  # everything delivered before these is settled: one ack for the lot
            await settle(messages[-1].ack(multiple=True))
        metrics.delivered(queue, len(events))
        return len(events)

    async def _process(
        self, queue: str, handler: Handler, message: AbstractIncomingMessage, retry: Retry
    ) -> int:
        """Deliver one message (an event or a pack) and settle it; how many events it applied."""
        attempts = _attempts(message)
        try:
            events = read(message.body)
            await deliver(handler, events)
        except asyncio.CancelledError:
            raise  # unsettled: closing the channel returns it
        except Exception as exc:
            verdict = self._policy.after(exc, attempts)
            if verdict.dead:
                await self._dead_letters.dead_letter(queue, message, verdict.reason, attempts)
            else:
                log.info(
                    "rabbitmq bus: %s on %r failed (attempt %d), retry in %.2fs: %s",
                    message.message_id,
                    queue,
                    attempts,
                    verdict.delay,
                    exc,
                )
                retry(message, verdict.delay)
                metrics.redelivered(queue)
            return 0
        await settle(message.ack())
        metrics.delivered(queue, len(events))
        return len(events)

    async def drain(self, queue: str, handler: Handler) -> int:
        """Deliver each message the queue holds now once (basic.get); failures go back to the queue when
        the drain ends, so each drain is at most one attempt per message. Returns the events applied."""
        handled = 0
        held: list[AbstractIncomingMessage] = []
        async with self._scratch_channel() as ch:
            try:
                q = await ch.get_queue(self._topology.physical(queue), ensure=True)
            except ChannelNotFoundEntity as exc:
                raise BusError(f"queue {queue!r} is not declared") from exc
            waiting = q.declaration_result.message_count or 0
            for _ in range(waiting):
                message = await q.get(no_ack=False, fail=False, timeout=self._timeout)
                if message is None:
                    break
                handled += await self._process(queue, handler, message, lambda m, _delay: held.append(m))
            for message in held:
                await settle(message.nack(requeue=True))
        return handled


def _attempts(message: AbstractIncomingMessage) -> int:
    # The quorum queue's own count of earlier deliveries: honest across processes and crashes.
    count = (message.headers or {}).get("x-delivery-count", 0)
    try:
        return int(count) + 1  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 1


def _stale(message: AbstractIncomingMessage) -> bool:
    try:
        message.channel  # noqa: B018 - raises when the delivering channel is closed
    except ChannelInvalidStateError:
        return True
    return False
