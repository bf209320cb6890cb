"""Dead letters: the hub's own dead-lettering (a confirmed copy with the reason, then the ack), and
reading the dead-letter queue back: list, replay, stats."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from hub.config import Settings
from hub.messaging.bus.base import BusError, BusUnavailable, DeadLetter, Progress, QueueStats
from hub.messaging.bus.rabbitmq.amqp import NETWORK_ERRORS, ScratchChannel, body_id, log, settle
from hub.messaging.bus.rabbitmq.publisher import Publisher
from hub.messaging.bus.rabbitmq.topology import Topology
from hub.messaging.redelivery import reason_of
from hub.observability import metrics

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


def _as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class DeadLetters:
    """The dead-letter queue as the hub writes and reads it (readers basic.get without ack)."""

    def __init__(
        self,
        settings: Settings,
        topology: Topology,
        publisher: Publisher,
        connection: Callable[[], AbstractRobustConnection],
        scratch_channel: ScratchChannel,
        timeout: float,
    ) -> None:
        self._settings = settings
        self._topology = topology
        self._publisher = publisher
        self._connection = connection
        self._scratch_channel = scratch_channel
        self._timeout = timeout

    async def dead_letter(
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
            message_id=message.message_id or body_id(message.body),
            correlation_id=message.correlation_id,
            type=message.type,
            timestamp=message.timestamp,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            await self._publisher.send(self._publisher.dlx, copy, message.routing_key or "")
        except BusError as exc:
            # Not stored as a dead letter yet: leave it to the broker to deliver again.
            log.error("rabbitmq bus: cannot dead-letter %s: %s", message.message_id, exc)
            await settle(message.nack(requeue=True))
            return
        metrics.dead_lettered(queue)
        await settle(message.ack())

    async def _browse(
        self, act: Callable[[AbstractIncomingMessage], Awaitable[None]] | None = None
    ) -> list[AbstractIncomingMessage]:
        """basic.get every dead letter without ack; `act` may settle some; closing the channel returns
        the rest to the dead-letter queue (so reading never loses one). A concurrent reader sees the
        messages this one holds only after it is done."""
        messages: list[AbstractIncomingMessage] = []
        async with self._scratch_channel() as ch:
            q = await ch.get_queue(self._topology.dead_letter_queue, ensure=False)
            while len(messages) < MAX_BROWSE:
                message = await q.get(no_ack=False, fail=False, timeout=self._timeout)
                if message is None:
                    break
                messages.append(message)
                if act is not None:
                    await act(message)
        return messages

    def _letter_of(self, message: AbstractIncomingMessage) -> DeadLetter:
        headers = message.headers or {}
        message_id = message.message_id or body_id(message.body)
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
            queue=self._topology.logical(origin),
            reason=reason,
            attempts=attempts,
            body=message.body,
            dead_at=dead_at if isinstance(dead_at, datetime) else None,
        )

    async def letters(self, queue: str | None = None) -> list[DeadLetter]:
        letters = [self._letter_of(message) for message in await self._browse()]
        return [letter for letter in letters if queue is None or letter.queue == queue]

    async def replay(self, ids: Sequence[str] | None = None, progress: Progress | None = None) -> int:
        """Publish the chosen dead letters (confirmed) to their own queue only, through the default
        exchange, so the event's other destinations do not get it twice; then ack them in the DLQ."""
        wanted = None if ids is None else set(ids)
        replayed = 0
        # A replayed letter that fails at once dies again while this browse still reads the queue:
        # its new copy is left for the next replay, so one replay sends each letter back once.
        sent: set[str] = set()
        if self._publisher.channel is None:
            raise BusUnavailable("the bus is not connected")
        default = self._publisher.channel.default_exchange

        async def act(message: AbstractIncomingMessage) -> None:
            nonlocal replayed
            letter = self._letter_of(message)
            if (wanted is not None and letter.id not in wanted) or letter.id in sent:
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
            await self._publisher.send(default, copy, self._topology.physical(letter.queue))
            # A lost ack leaves the letter in the DLQ as well: replaying it again is harmless, since
            # consumers are idempotent on the event id.
            await settle(message.ack())
            sent.add(letter.id)
            replayed += 1
            if progress is not None:
                progress(replayed, None)

        await self._browse(act)
        return replayed

    async def stats(self) -> list[QueueStats]:
        """Ready depth of every known route's queue, and its dead letters."""
        depth: dict[str, int] = {}
        try:
            async with self._connection().channel(publisher_confirms=False) as ch:
                for queue in self._topology.routes:
                    q: AbstractQueue = await ch.get_queue(self._topology.physical(queue), ensure=True)
                    depth[queue] = q.declaration_result.message_count or 0
        except NETWORK_ERRORS as exc:
            raise BusUnavailable(f"the broker is not reachable: {reason_of(exc)}") from exc
        dead: dict[str, int] = {}
        for letter in await self.letters():
            dead[letter.queue] = dead.get(letter.queue, 0) + 1
        return [
            QueueStats(queue=queue, depth=depth.get(queue, 0), dead_letters=dead.get(queue, 0))
            for queue in sorted(depth.keys() | dead.keys())
        ]
