"""The RabbitMQ bus (aio-pika), for several hub processes on a RabbitMQ cluster.

Topology (all names prefixed with `settings.bus_namespace`, "ns"), declared idempotently:

- `{ns}.events`: durable topic exchange; the routing key is the CloudEvent type.
- `{ns}.{queue}` per Route: durable quorum queue, bound by the route's patterns, with
  `x-delivery-limit` = settings.delivery_limit, `x-dead-letter-exchange` = `{ns}.dlx`,
  `x-dead-letter-strategy` = at-least-once (which needs `x-overflow` = reject-publish).
- `{ns}.dlx`: durable fanout exchange into `{ns}.dead-letters`, one durable quorum queue.

Messages are CloudEvents 1.0 in AMQP *structured* content mode: the body is the whole CloudEvent as
JSON (content type `application/cloudevents+json`), so a consumer on any stack reads one document;
the AMQP properties repeat what brokers and tools look at: message_id = event id, correlation_id,
type, timestamp, delivery_mode persistent.

Publishing uses publisher confirms and `mandatory`: a message no queue is bound for comes back as
basic.return and raises `Unroutable`; a lost connection raises `BusUnavailable` (the outbox relay
keeps the event and tries again).

Consuming: one channel per queue with prefetch = settings.prefetch; the deliveries go through one
worker task per queue, so the handler sees them in queue order, one at a time; a message is acked
only after the handler returned.

Retries: a handler failure holds the message (unacked) for `retry_backoff_seconds * 2**(n-1)` and
then nacks it with requeue, while the next messages flow on. The attempt count is the broker's own
`x-delivery-count` of the quorum queue (+1), so it is honest across hub processes and crashes and
needs no extra queues or re-publishing (which would reset or duplicate the count). The price: a
message waiting for its retry keeps one prefetch slot.

Dead letters keep their reason: when the hub gives up on a message (unreadable body,
PermanentError/MalformedEvent, or the attempt that reaches delivery_limit) it publishes a copy,
confirmed, to `{ns}.dlx` with headers x-hub-reason, x-hub-queue, x-hub-attempts, x-hub-dead-at, and
only then acks the original. The broker's own dead-lettering (x-delivery-limit, reported in
`x-death`) is the safety net for consumers that crash before settling: the broker gives up one
delivery after the hub would have.

Reconnects: `connect_robust` reconnects the connection and reopens our channels, but our
exchanges, queues and consumers are declared with robust=False: the bus restores them itself in a
reconnect callback (topology first, then a fresh channel and basic.consume per tracked consumer),
so there is exactly one owner of the restore and no consumer is lost or doubled. Deliveries from
the dead channel are dropped (the broker redelivers them).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustQueue,
)
from aio_pika.exceptions import (
    CONNECTION_EXCEPTIONS,
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
    DeliveryError,
    PublishError,
)

from hub.config import Settings
from hub.events import CloudEvent
from hub.messaging.bus.base import (
    Bus,
    BusError,
    BusUnavailable,
    DeadLetter,
    Handler,
    QueueStats,
    Route,
    Unroutable,
)
from hub.messaging.redelivery import RedeliveryPolicy
from hub.messaging.redelivery import reason_of as _reason
from hub.waiting import within

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
DEAD_LETTER_QUEUE = "dead-letters"
# Headers the hub adds to a dead letter; the rest of the original headers are kept.
H_REASON, H_QUEUE, H_ATTEMPTS, H_DEAD_AT = "x-hub-reason", "x-hub-queue", "x-hub-attempts", "x-hub-dead-at"
# Headers that describe a message's past life, dropped when it is replayed.
_LIFE_HEADERS = (
    H_REASON,
    H_QUEUE,
    H_ATTEMPTS,
    H_DEAD_AT,
    "x-death",
    "x-delivery-count",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)
# dead_letters / replay / stats read the dead-letter queue by basic.get without ack; this many at most.
MAX_BROWSE = 10_000
_NETWORK_ERRORS = (*CONNECTION_EXCEPTIONS, TimeoutError, ConnectionError)


def _as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(eq=False)
class _Listener:
    """A broadcast subscription: a server-named, exclusive, auto-delete queue for this process."""

    patterns: tuple[str, ...]
    handler: Handler
    channel: AbstractRobustChannel | None = None


@dataclass(eq=False)
class _Consumer:
    queue: str
    handler: Handler
    inbox: asyncio.Queue[AbstractIncomingMessage] = field(default_factory=asyncio.Queue)
    channel: AbstractRobustChannel | None = None
    tag: str | None = None
    worker: asyncio.Task[None] | None = None
    delayed: set[asyncio.Task[None]] = field(default_factory=set)


class RabbitBus(Bus):
    def __init__(
        self,
        settings: Settings,
        *,
        reconnect_interval: float = 2.0,
        timeout: float = 10.0,
    ) -> None:
        self._settings = settings
        self._policy = RedeliveryPolicy(settings.delivery_limit, settings.retry_backoff_seconds)
        self._url = settings.broker_url
        self._ns = settings.bus_namespace
        self._reconnect_interval = reconnect_interval
        self._timeout = timeout
        self._conn: AbstractRobustConnection | None = None
        self._pub: AbstractRobustChannel | None = None
        self._events_exchange: AbstractExchange | None = None
        self._dlx_exchange: AbstractExchange | None = None
        self._routes: dict[str, tuple[str, ...]] = {}
        self._consumers: dict[str, _Consumer] = {}
        self._listeners: list[_Listener] = []
        self._restoring: asyncio.Task[None] | None = None
        self._closing = False
        # Set after every successful restore (tests and health checks wait on it).
        self.restored = asyncio.Event()

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

    def _logical(self, physical: str) -> str:
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

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._conn is not None:
            return
        self._closing = False
        try:
            conn = await aio_pika.connect_robust(
                self._url, timeout=self._timeout, reconnect_interval=self._reconnect_interval
            )
        except _NETWORK_ERRORS as exc:
            raise BusUnavailable(f"cannot connect to the broker: {exc}") from exc
        self._conn = conn
        conn.reconnect_callbacks.add(self._on_reconnect)
        conn.close_callbacks.add(self._on_disconnect)
        try:
            self._pub = await conn.channel(publisher_confirms=True, on_return_raises=True)
            await self._declare_all()
        except _NETWORK_ERRORS as exc:
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
        for queue in list(self._consumers):
            await self.cancel(queue)
        for listener in self._listeners:
            await self._stop_listener(listener)
        self._listeners.clear()
        conn, self._conn = self._conn, None
        self._pub = self._events_exchange = self._dlx_exchange = None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    def _connection(self) -> AbstractRobustConnection:
        if self._conn is None:
            raise BusError("the RabbitMQ bus is not started")
        return self._conn

    # -- topology ------------------------------------------------------------------------------------

    async def _declare_all(self) -> None:
        """Declare the base topology and every known route (start, declare, reconnect)."""
        assert self._pub is not None
        async with self._connection().channel(publisher_confirms=False) as ch:
            await self._declare_base(ch)
            for queue, patterns in self._routes.items():
                await self._declare_route(ch, queue, patterns)
        # Exchange handles on the publishing channel (robust=False: restored by us, not aio-pika).
        self._events_exchange = await self._pub.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True, robust=False
        )
        self._dlx_exchange = await self._pub.declare_exchange(
            self.dlx_name, aio_pika.ExchangeType.FANOUT, durable=True, robust=False
        )

    async def _declare_base(self, ch: AbstractRobustChannel) -> None:
        topic, fanout = aio_pika.ExchangeType.TOPIC, aio_pika.ExchangeType.FANOUT
        await ch.declare_exchange(self.exchange_name, topic, durable=True, robust=False)
        dlx = await ch.declare_exchange(self.dlx_name, fanout, durable=True, robust=False)
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

    async def declare(self, routes: Sequence[Route]) -> None:
        for route in routes:
            known = self._routes.get(route.queue, ())
            self._routes[route.queue] = tuple(dict.fromkeys((*known, *route.patterns)))
        try:
            async with self._connection().channel(publisher_confirms=False) as ch:
                await self._declare_base(ch)
                for route in routes:
                    await self._declare_route(ch, route.queue, self._routes[route.queue])
        except _NETWORK_ERRORS as exc:
            raise BusUnavailable(f"cannot declare the topology: {exc}") from exc

    # -- publishing ----------------------------------------------------------------------------------

    @staticmethod
    def message_for(event: CloudEvent) -> aio_pika.Message:
        return aio_pika.Message(
            body=event.to_json(),
            content_type=CONTENT_TYPE,
            message_id=event.id,
            correlation_id=event.correlationid,
            type=event.type,
            timestamp=event.time,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )

    async def publish(self, event: CloudEvent) -> None:
        await self._publish(self._events_exchange, self.message_for(event), event.type)

    async def _publish_raw(self, routing_key: str, body: bytes, message_id: str | None = None) -> None:
        """Publish bytes as they are (tests and tools: e.g. a malformed message)."""
        message = aio_pika.Message(
            body=body, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await self._publish(self._events_exchange, message, routing_key)

    async def _publish(self, exchange: AbstractExchange | None, message: aio_pika.Message, key: str) -> None:
        self._connection()
        if exchange is None:
            raise BusUnavailable("the bus is not connected")
        try:
            await exchange.publish(message, routing_key=key, mandatory=True, timeout=self._timeout)
        except PublishError as exc:
            raise Unroutable(f"no queue is bound for routing key {key!r} ({exc})") from exc
        except DeliveryError as exc:
            raise BusUnavailable(f"the broker refused the message (nack): {exc}") from exc
        except _NETWORK_ERRORS as exc:
            raise BusUnavailable(f"the broker is not reachable: {_reason(exc)}") from exc

    # -- consuming -----------------------------------------------------------------------------------

    async def consume(self, queue: str, handler: Handler) -> None:
        if queue in self._consumers:
            raise BusError(f"queue {queue!r} already has a consumer")
        consumer = _Consumer(queue=queue, handler=handler)
        self._consumers[queue] = consumer
        consumer.worker = asyncio.create_task(self._work(consumer), name=f"bus-consumer:{queue}")
        try:
            await self._start_consumer(consumer)
        except ChannelNotFoundEntity as exc:
            await self.cancel(queue)
            raise BusError(f"queue {queue!r} is not declared") from exc
        except _NETWORK_ERRORS as exc:
            # Stays registered: the reconnect restores it.
            log.warning("rabbitmq bus: consumer of %r starts after the next reconnect: %s", queue, exc)

    async def _start_consumer(self, consumer: _Consumer) -> None:
        ch = await self._connection().channel(publisher_confirms=False)
        consumer.channel = ch
        await ch.set_qos(prefetch_count=self._settings.prefetch)
        # Passive: consuming never creates a queue (declare does), and robust=False: restored by us.
        q: AbstractRobustQueue = await ch.declare_queue(
            self.physical(consumer.queue), passive=True, robust=False
        )

        async def deliver(message: AbstractIncomingMessage) -> None:
            consumer.inbox.put_nowait(message)

        consumer.tag = await q.consume(deliver, robust=False)

    async def _stop_channel(self, consumer: _Consumer) -> None:
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

    async def broadcast(self, patterns: Sequence[str], handler: Handler) -> None:
        listener = _Listener(tuple(patterns), handler)
        self._listeners.append(listener)
        try:
            await self._start_listener(listener)
        except _NETWORK_ERRORS as exc:
            log.warning("rabbitmq bus: broadcast listener starts after the next reconnect: %s", exc)

    async def _start_listener(self, listener: _Listener) -> None:
        ch = await self._connection().channel(publisher_confirms=False)
        listener.channel = ch
        # Exclusive queues die with the connection: the restore after a reconnect declares a new one.
        q = await ch.declare_queue("", exclusive=True, auto_delete=True, durable=False, robust=False)
        for pattern in listener.patterns:
            await q.bind(self.exchange_name, routing_key=pattern, robust=False)

        async def hear(message: AbstractIncomingMessage) -> None:
            try:
                await listener.handler(CloudEvent.from_json(message.body))
            except Exception:  # at most once by contract: log and go on
                log.exception("rabbitmq bus: broadcast listener failed on %s", message.message_id)

        await q.consume(hear, no_ack=True, robust=False)

    async def _stop_listener(self, listener: _Listener) -> None:
        ch, listener.channel = listener.channel, None
        if ch is not None:
            with contextlib.suppress(Exception):
                await within(ch.close(), self._timeout)

    async def cancel(self, queue: str) -> None:
        consumer = self._consumers.pop(queue, None)
        if consumer is None:
            return
        if consumer.worker is not None:
            consumer.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer.worker
        await self._stop_channel(consumer)

    async def _work(self, consumer: _Consumer) -> None:
        def retry(message: AbstractIncomingMessage, delay: float) -> None:
            self._retry_later(consumer, message, delay)

        while True:
            message = await consumer.inbox.get()
            if _stale(message):
                continue  # its channel died; the broker delivers it again
            try:
                await self._process(consumer.queue, consumer.handler, message, retry)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("rabbitmq bus: settling a message of %r failed", consumer.queue)

    def _retry_later(self, consumer: _Consumer, message: AbstractIncomingMessage, delay: float) -> None:
        async def nack_later() -> None:
            try:
                await asyncio.sleep(delay)
            finally:
                await _settle(message.nack(requeue=True))

        task = asyncio.create_task(nack_later())
        consumer.delayed.add(task)
        task.add_done_callback(consumer.delayed.discard)

    def _attempts(self, message: AbstractIncomingMessage) -> int:
        count = (message.headers or {}).get("x-delivery-count", 0)
        try:
            return int(count) + 1  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return 1

    async def _process(
        self,
        queue: str,
        handler: Handler,
        message: AbstractIncomingMessage,
        retry: Callable[[AbstractIncomingMessage, float], None],
    ) -> bool:
        """Deliver one message and settle it; True when the handler succeeded."""
        attempts = self._attempts(message)
        try:
            event = CloudEvent.from_json(message.body)
            await handler(event)
        except asyncio.CancelledError:
            raise  # unsettled: closing the channel returns it
        except Exception as exc:
            verdict = self._policy.after(exc, attempts)
            if verdict.dead:
                await self._dead_letter(queue, message, verdict.reason, attempts)
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
            return False
        await _settle(message.ack())
        return True

    async def _dead_letter(
        self, queue: str, message: AbstractIncomingMessage, reason: str, attempts: int
    ) -> None:
        """Publish a confirmed copy with the reason to the dead-letter exchange, then ack the original."""
        log.warning("rabbitmq bus: %s on %r is a dead letter: %s", message.message_id, queue, reason)
        headers = {k: v for k, v in (message.headers or {}).items() if k != "x-delivery-count"}
        headers.update(
            {
                H_REASON: reason[:4000],
                H_QUEUE: queue,
                H_ATTEMPTS: attempts,
                H_DEAD_AT: datetime.now(UTC).isoformat(),
            }
        )
        copy = aio_pika.Message(
            body=message.body,
            headers=headers,
            content_type=message.content_type,
            message_id=message.message_id or _body_id(message.body),
            correlation_id=message.correlation_id,
            type=message.type,
            timestamp=message.timestamp,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            await self._publish(self._dlx_exchange, copy, message.routing_key or "")
        except BusError as exc:
            # Not stored as a dead letter yet: leave it to the broker to deliver again.
            log.error("rabbitmq bus: cannot dead-letter %s: %s", message.message_id, exc)
            await _settle(message.nack(requeue=True))
            return
        await _settle(message.ack())

    async def drain(self, queue: str, handler: Handler) -> int:
        """Deliver each message the queue holds now once (basic.get); failures go back to the queue when
        the drain ends, so each drain is at most one attempt per message."""
        handled = 0
        held: list[AbstractIncomingMessage] = []
        async with self._scratch_channel() as ch:
            try:
                q = await ch.get_queue(self.physical(queue), ensure=True)
            except ChannelNotFoundEntity as exc:
                raise BusError(f"queue {queue!r} is not declared") from exc
            waiting = q.declaration_result.message_count or 0
            for _ in range(waiting):
                message = await q.get(no_ack=False, fail=False, timeout=self._timeout)
                if message is None:
                    break
                if await self._process(queue, handler, message, lambda m, _delay: held.append(m)):
                    handled += 1
            for message in held:
                await _settle(message.nack(requeue=True))
        return handled

    @contextlib.asynccontextmanager
    async def _scratch_channel(self) -> AsyncIterator[AbstractRobustChannel]:
        """A short-lived channel; closing it returns whatever it holds unacked to its queue."""
        try:
            ch = await self._connection().channel(publisher_confirms=False)
        except _NETWORK_ERRORS as exc:
            raise BusUnavailable(f"the broker is not reachable: {_reason(exc)}") from exc
        try:
            yield ch
        except _NETWORK_ERRORS as exc:
            raise BusUnavailable(f"the broker is not reachable: {_reason(exc)}") from exc
        finally:
            with contextlib.suppress(Exception):
                await ch.close()

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
        delay = self._reconnect_interval
        while not self._closing:
            try:
                await self._declare_all()
                for consumer in list(self._consumers.values()):
                    await self._stop_channel(consumer)
                    await self._start_consumer(consumer)
                for listener in self._listeners:
                    await self._stop_listener(listener)
                    await self._start_listener(listener)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("rabbitmq bus: restore after reconnect failed (%s); retrying", _reason(exc))
                await asyncio.sleep(delay)
                continue
            log.info("rabbitmq bus: topology and %d consumers restored", len(self._consumers))
            self.restored.set()
            return

    # -- dead letters and stats ----------------------------------------------------------------------

    async def _browse(
        self, act: Callable[[AbstractIncomingMessage], Awaitable[None]] | None = None
    ) -> list[AbstractIncomingMessage]:
        """basic.get every dead letter without ack; `act` may settle some; closing the channel returns
        the rest to the dead-letter queue (so reading never loses one). A concurrent reader sees the
        messages this one holds only after it is done."""
        messages: list[AbstractIncomingMessage] = []
        async with self._scratch_channel() as ch:
            q = await ch.get_queue(self.dead_letter_queue, ensure=False)
            while len(messages) < MAX_BROWSE:
                message = await q.get(no_ack=False, fail=False, timeout=self._timeout)
                if message is None:
                    break
                messages.append(message)
                if act is not None:
                    await act(message)
        return messages

    def _dead_letter_of(self, message: AbstractIncomingMessage) -> DeadLetter:
        headers = message.headers or {}
        message_id = message.message_id or _body_id(message.body)
        if H_QUEUE in headers:
            dead_at = None
            with contextlib.suppress(TypeError, ValueError):
                dead_at = datetime.fromisoformat(_as_str(headers.get(H_DEAD_AT)))
            return DeadLetter(
                id=message_id,
                queue=_as_str(headers[H_QUEUE]),
                reason=_as_str(headers.get(H_REASON, "")),
                attempts=int(headers.get(H_ATTEMPTS, 0) or 0),  # type: ignore[arg-type]
                body=message.body,
                dead_at=dead_at,
            )
        # Dead-lettered by the broker itself (consumer crashes up to x-delivery-limit, or rejected).
        deaths = headers.get("x-death") or []
        death: dict[str, Any] = deaths[0] if isinstance(deaths, list) and deaths else {}  # type: ignore[assignment]
        cause = _as_str(death.get("reason") or headers.get("x-first-death-reason") or "unknown")
        origin = _as_str(death.get("queue") or headers.get("x-first-death-queue") or "")
        if cause == "delivery_limit":
            attempts = self._settings.delivery_limit + 1
            reason = (
                f"broker: delivery_limit (delivered {attempts} times, never settled: "
                "the consumer crashed or lost its connection)"
            )
        else:
            attempts = int(death.get("count", 1) or 1)
            reason = f"broker: {cause}"
        dead_at = death.get("time")
        return DeadLetter(
            id=message_id,
            queue=self._logical(origin),
            reason=reason,
            attempts=attempts,
            body=message.body,
            dead_at=dead_at if isinstance(dead_at, datetime) else None,
        )

    async def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        letters = [self._dead_letter_of(message) for message in await self._browse()]
        return [letter for letter in letters if queue is None or letter.queue == queue]

    async def replay(self, ids: Sequence[str] | None = None) -> int:
        """Publish the chosen dead letters (confirmed) to their own queue only, through the default
        exchange, so the event's other destinations do not get it twice; then ack them in the DLQ."""
        wanted = None if ids is None else set(ids)
        replayed = 0
        if self._pub is None:
            raise BusUnavailable("the bus is not connected")
        default = self._pub.default_exchange

        async def act(message: AbstractIncomingMessage) -> None:
            nonlocal replayed
            letter = self._dead_letter_of(message)
            if wanted is not None and letter.id not in wanted:
                return
            headers = {k: v for k, v in (message.headers or {}).items() if k not in _LIFE_HEADERS}
            copy = aio_pika.Message(
                body=message.body,
                headers=headers,
                content_type=message.content_type,
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                type=message.type,
                timestamp=message.timestamp,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await self._publish(default, copy, self.physical(letter.queue))
            await message.ack()
            replayed += 1

        await self._browse(act)
        return replayed

    async def stats(self) -> list[QueueStats]:
        depth: dict[str, int] = {}
        try:
            async with self._connection().channel(publisher_confirms=False) as ch:
                for queue in self._routes:
                    q: AbstractQueue = await ch.get_queue(self.physical(queue), ensure=True)
                    depth[queue] = q.declaration_result.message_count or 0
        except _NETWORK_ERRORS as exc:
            raise BusUnavailable(f"the broker is not reachable: {_reason(exc)}") from exc
        dead: dict[str, int] = {}
        for letter in await self.dead_letters():
            dead[letter.queue] = dead.get(letter.queue, 0) + 1
        return [
            QueueStats(queue=queue, depth=depth.get(queue, 0), dead_letters=dead.get(queue, 0))
            for queue in sorted(depth.keys() | dead.keys())
        ]


def _stale(message: AbstractIncomingMessage) -> bool:
    try:
        message.channel  # noqa: B018 - raises when the delivering channel is closed
    except ChannelInvalidStateError:
        return True
    return False


def _body_id(body: bytes) -> str:
    return "sha1:" + hashlib.sha1(body, usedforsecurity=False).hexdigest()


async def _settle(operation: Awaitable[None]) -> None:
    """Ack/nack; when the channel is gone the broker has already returned the message."""
    try:
        await operation
    except Exception as exc:
        log.debug("rabbitmq bus: settle failed (the broker redelivers): %s", exc)
