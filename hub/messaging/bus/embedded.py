"""The embedded bus: in-process, durable through the hub's store (table `bus_messages`).

Same semantics as the RabbitMQ engine (see hub.messaging.bus.base), for the one-process hub and fast tests:

- Routes (queue -> patterns) live in memory, from `declare`; messages live in `bus_messages`, so a
  crash loses nothing: a row is deleted only after its handler returned.
- `publish` inserts one row per matching queue in one transaction (the "confirm"), raises
  `Unroutable` when no queue matches, then wakes the queues' consumers.
- A consumer is one task per queue: it takes ready rows (available_at <= now) in seq order, a batch
  of `settings.prefetch`, and hands them to the handler one by one (publish order). A failing
  message is delayed by `retry_backoff_seconds * 2**(attempts-1)` while the others flow on; after
  `delivery_limit` attempts, or at once for PermanentError / MalformedEvent / an unreadable body, it
  becomes a dead letter (state 'dead') with the reason "ExceptionClass: message".
- `cancel` / `close` cancel the task; the message being handled stays in the table and is
  delivered again (at-least-once; consumers are idempotent).

The embedded bus is for one hub process: two processes consuming the same store would both deliver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config import Settings
from hub.events import CloudEvent, new_id
from hub.messaging.bus.base import (
    BatchHandler,
    Bus,
    BusError,
    BusUnavailable,
    DeadLetter,
    Handler,
    Progress,
    QueueStats,
    Route,
    Unroutable,
    topic_matches,
)
from hub.messaging.bus.delivery import deliver, pack, read
from hub.messaging.redelivery import RedeliveryPolicy
from hub.observability import metrics
from hub.store.tables import bus_messages
from hub.waiting import wait_event

log = logging.getLogger(__name__)

READY = "ready"
DEAD = "dead"
# A consumer re-checks the table at least this often, even when nothing wakes it.
IDLE_POLL_SECONDS = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite gives naive datetimes back; everything the bus stores is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class EmbeddedBus(Bus):
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._policy = RedeliveryPolicy(settings.delivery_limit, settings.retry_backoff_seconds)
        self._routes: dict[str, tuple[str, ...]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._consumers: dict[str, asyncio.Task[None]] = {}
        self._listeners: list[tuple[tuple[str, ...], Handler]] = []
        self._listening: set[asyncio.Task[None]] = set()
        self._closed = False
        self._full: set[str] = set()  # queues whose consumer found a full batch ready last time

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        for queue in list(self._consumers):
            await self.cancel(queue)
        self._listeners.clear()
        for task in list(self._listening):
            task.cancel()

    # -- topology and publishing -------------------------------------------------------------------

    async def declare(self, routes: Sequence[Route]) -> None:
        for route in routes:
            known = self._routes.get(route.queue, ())
            self._routes[route.queue] = tuple(dict.fromkeys((*known, *route.patterns)))
            self._event(route.queue)

    def _matching_queues(self, routing_key: str) -> list[str]:
        return [
            queue
            for queue, patterns in self._routes.items()
            if any(topic_matches(pattern, routing_key) for pattern in patterns)
        ]

    async def publish(self, event: CloudEvent) -> None:
        outcome = (await self.publish_many([event]))[0]
        if outcome is not None:
            raise outcome

    async def publish_many(self, events: Sequence[CloudEvent]) -> list[BusError | None]:
        """All routable events in one transaction (the "confirm"), then the listeners hear them."""
        outcomes: list[BusError | None] = []
        rows: list[tuple[list[str], str, bytes]] = []
        heard: list[tuple[Handler, CloudEvent]] = []
        for event in events:
            queues = self._matching_queues(event.type)
            listeners = [
                h for patterns, h in self._listeners if any(topic_matches(p, event.type) for p in patterns)
            ]
            if not queues and not listeners:
                outcomes.append(Unroutable(f"no queue is bound for event type {event.type!r}"))
                continue
            outcomes.append(None)
            if queues:
                rows.append((queues, event.id, event.to_json()))
            heard.extend((h, event) for h in listeners)
        if rows:
            try:
                await self._insert(rows)
            except BusUnavailable as exc:
                return [exc for _ in events]
        metrics.published_events(events, outcomes)
        for handler, event in heard:
            task = asyncio.create_task(self._hear(handler, event))
            self._listening.add(task)
            task.add_done_callback(self._listening.discard)
        return outcomes

    async def broadcast(self, patterns: Sequence[str], handler: Handler) -> None:
        self._listeners.append((tuple(patterns), handler))

    @staticmethod
    async def _hear(handler: Handler, event: CloudEvent) -> None:
        try:
            await handler(event)
        except Exception:  # a listener is best effort by contract
            log.exception("embedded bus: broadcast listener failed on %s", event.id)

    async def publish_pack(self, queue: str, bodies: Sequence[bytes], pack_id: str) -> None:
        if queue not in self._routes:
            raise Unroutable(f"queue {queue!r} is not declared")
        await self._insert([([queue], pack_id, pack(bodies))])
        metrics.published(queue)

    async def _publish_raw(self, routing_key: str, body: bytes, message_id: str | None = None) -> None:
        """Publish bytes as they are (tests and tools: e.g. a malformed message)."""
        queues = self._matching_queues(routing_key)
        if not queues:
            raise Unroutable(f"no queue is bound for routing key {routing_key!r}")
        await self._insert([(queues, message_id or new_id(), body)])

    async def _insert(self, messages: list[tuple[list[str], str, bytes]]) -> None:
        now = _now()
        rows = [
            {
                "queue": queue,
                "message_id": message_id,
                "body": body,
                "state": READY,
                "attempts": 0,
                "available_at": now,
            }
            for queues, message_id, body in messages
            for queue in queues
        ]
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(bus_messages), rows)
        except OperationalError as exc:
            raise BusUnavailable(f"the store refused the message: {exc}") from exc
        for queue in {q for queues, _, _ in messages for q in queues}:
            self._event(queue).set()

    # -- consuming ---------------------------------------------------------------------------------

    def _event(self, queue: str) -> asyncio.Event:
        event = self._wake.get(queue)
        if event is None:
            event = self._wake[queue] = asyncio.Event()
        return event

    def _lock(self, queue: str) -> asyncio.Lock:
        lock = self._locks.get(queue)
        if lock is None:
            lock = self._locks[queue] = asyncio.Lock()
        return lock

    async def consume(self, queue: str, handler: Handler) -> None:
        if self._closed:
            raise BusError("the bus is closed")
        running = self._consumers.get(queue)
        if running is not None and not running.done():
            raise BusError(f"queue {queue!r} already has a consumer")
        self._consumers[queue] = asyncio.create_task(self._run(queue, handler), name=f"bus-consumer:{queue}")

    async def cancel(self, queue: str) -> None:
        self._full.discard(queue)
        task = self._consumers.pop(queue, None)
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self, queue: str, handler: Handler) -> None:
        wake = self._event(queue)
        while True:
            wake.clear()
            try:
                async with self._lock(queue):
                    handled = await self._handle_batch(queue, handler)
                if handled:
                    continue
                next_at = await self._next_available(queue)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("embedded bus: consumer of %r failed; retrying", queue)
                next_at = None
            timeout = IDLE_POLL_SECONDS
            if next_at is not None:
                timeout = min(timeout, max(0.0, (next_at - _now()).total_seconds()))
            await wait_event(wake, timeout)

    async def _fetch(self, queue: str, limit: int, after_seq: int = 0, upto_seq: int | None = None):
        query = (
            select(bus_messages)
            .where(
                bus_messages.c.queue == queue,
                bus_messages.c.state == READY,
                bus_messages.c.available_at <= _now(),
                bus_messages.c.seq > after_seq,
            )
            .order_by(bus_messages.c.seq)
            .limit(limit)
        )
        if upto_seq is not None:
            query = query.where(bus_messages.c.seq <= upto_seq)
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).all()

    async def _next_available(self, queue: str) -> datetime | None:
        query = select(func.min(bus_messages.c.available_at)).where(
            bus_messages.c.queue == queue, bus_messages.c.state == READY
        )
        async with self._engine.connect() as conn:
            return _aware((await conn.execute(query)).scalar())

    def lagging(self) -> bool:
        return bool(self._full)

    async def _handle_batch(self, queue: str, handler: Handler) -> int:
        rows = await self._fetch(queue, self._settings.prefetch)
        # A full fetch: more may be ready than the consumer takes at once.
        (self._full.add if len(rows) >= self._settings.prefetch else self._full.discard)(queue)
        await self._deliver(rows, handler)
        return len(rows)

    async def _deliver(self, rows: Sequence[Any], handler: Handler) -> int:
        """Deliver rows in order: in batches when the handler takes them, one by one otherwise or
        when a batch fails. Returns how many were handled successfully."""
        handled = 0
        together = handler if isinstance(handler, BatchHandler) else None
        size = max(1, self._settings.consume_batch) if together is not None else 1
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            if together is not None and len(chunk) > 1:
                applied = await self._handle_together(chunk, together)
                if applied:
                    handled += applied
                    continue
            for row in chunk:
                handled += await self._handle(row, handler)
        return handled

    async def _handle_together(self, rows: Sequence[Any], handler: BatchHandler) -> int:
        """Apply rows as one batch and delete them together; how many events they held, 0 (nothing
        settled) when it failed."""
        try:
            events = [e for row in rows for e in read(row.body)]
            await handler.batch(events)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("embedded bus: a batch of %d failed, delivering one by one: %s", len(rows), exc)
            return 0
        async with self._engine.begin() as conn:
            await conn.execute(delete(bus_messages).where(bus_messages.c.seq.in_([r.seq for r in rows])))
        metrics.delivered(rows[0].queue, len(events))
        return len(events)

    async def _handle(self, row, handler: Handler) -> int:
        """Deliver one row (an event or a pack); how many events it applied (the row is gone), 0 when
        it failed."""
        attempts = row.attempts + 1
        try:
            events = read(row.body)
            await deliver(handler, events)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            verdict = self._policy.after(exc, attempts)
            if verdict.dead:
                await self._dead(row, verdict.reason, attempts)
            else:
                log.info(
                    "embedded bus: %s on %r failed (attempt %d): %s", row.message_id, row.queue, attempts, exc
                )
                metrics.redelivered(row.queue)
                await self._update(
                    row.seq,
                    attempts=attempts,
                    available_at=_now() + timedelta(seconds=verdict.delay),
                    reason=verdict.reason,
                )
            return 0
        async with self._engine.begin() as conn:
            await conn.execute(delete(bus_messages).where(bus_messages.c.seq == row.seq))
        metrics.delivered(row.queue, len(events))
        return len(events)

    async def _dead(self, row, reason: str, attempts: int) -> None:
        log.warning("embedded bus: %s on %r is a dead letter: %s", row.message_id, row.queue, reason)
        metrics.dead_lettered(row.queue)
        await self._update(row.seq, state=DEAD, attempts=attempts, reason=reason, dead_at=_now())

    async def _update(self, seq: int, **values) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(update(bus_messages).where(bus_messages.c.seq == seq).values(**values))

    async def drain(self, queue: str, handler: Handler) -> int:
        """Deliver each message that is ready now once (a failure waits for its back-off or the next
        drain); return how many were handled successfully."""
        handled = 0
        async with self._lock(queue):
            async with self._engine.connect() as conn:
                upto = (
                    await conn.execute(
                        select(func.max(bus_messages.c.seq)).where(
                            bus_messages.c.queue == queue, bus_messages.c.state == READY
                        )
                    )
                ).scalar()
            if upto is None:
                return 0
            after = 0
            while True:
                rows = await self._fetch(queue, self._settings.prefetch, after_seq=after, upto_seq=upto)
                if not rows:
                    return handled
                after = rows[-1].seq
                handled += await self._deliver(rows, handler)

    # -- dead letters and stats --------------------------------------------------------------------

    async def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        query = select(bus_messages).where(bus_messages.c.state == DEAD).order_by(bus_messages.c.seq)
        if queue is not None:
            query = query.where(bus_messages.c.queue == queue)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            DeadLetter(
                id=row.message_id,
                queue=row.queue,
                reason=row.reason or "",
                attempts=row.attempts,
                body=row.body,
                dead_at=_aware(row.dead_at),
            )
            for row in rows
        ]

    async def replay(self, ids: Sequence[str] | None = None, progress: Progress | None = None) -> int:
        where = [bus_messages.c.state == DEAD]
        if ids is not None:
            if not ids:
                return 0
            where.append(bus_messages.c.message_id.in_(list(ids)))
        if progress is not None:
            return await self._replay_in_steps(where, progress)
        async with self._engine.begin() as conn:
            found = await conn.execute(select(bus_messages.c.queue).where(*where).distinct())
            queues = found.scalars().all()
            result = await conn.execute(
                update(bus_messages)
                .where(*where)
                .values(state=READY, attempts=0, available_at=_now(), reason=None, dead_at=None)
            )
        for queue in queues:
            self._event(queue).set()
        return result.rowcount or 0

    async def _replay_in_steps(self, where: list[Any], progress: Progress, step: int = 200) -> int:
        """The same replay, a transaction per `step` letters, reporting after each (the CLI's progress)."""
        async with self._engine.connect() as conn:
            query = select(bus_messages.c.seq).where(*where).order_by(bus_messages.c.seq)
            seqs = list((await conn.execute(query)).scalars())
        done = 0
        progress(0, len(seqs))
        for at in range(0, len(seqs), step):
            chunk = seqs[at : at + step]
            async with self._engine.begin() as conn:
                queues = (
                    await conn.execute(
                        select(bus_messages.c.queue).where(bus_messages.c.seq.in_(chunk)).distinct()
                    )
                ).scalars().all()
                result = await conn.execute(
                    update(bus_messages)
                    .where(bus_messages.c.seq.in_(chunk), bus_messages.c.state == DEAD)
                    .values(state=READY, attempts=0, available_at=_now(), reason=None, dead_at=None)
                )
            for queue in queues:
                self._event(queue).set()
            done += result.rowcount or 0
            progress(done, len(seqs))
        return done

    async def stats(self) -> list[QueueStats]:
        query = select(bus_messages.c.queue, bus_messages.c.state, func.count()).group_by(
            bus_messages.c.queue, bus_messages.c.state
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        counts: dict[str, dict[str, int]] = {queue: {} for queue in self._routes}
        for queue, state, count in rows:
            counts.setdefault(queue, {})[state] = count
        return [
            QueueStats(queue=queue, depth=by_state.get(READY, 0), dead_letters=by_state.get(DEAD, 0))
            for queue, by_state in sorted(counts.items())
        ]
