"""Idempotent consumer: applies an event to a destination once, however often it is delivered, and
never an event about an erased customer (hub.core.privacy): those are dropped, recorded as handled."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.events import CloudEvent, utcnow
from hub.model import is_golden_id
from hub.observability import tracing
from hub.observability.metrics import system_call
from hub.ports import BatchEventConsumer, EventConsumer
from hub.store.direct import SKIP_CONFLICTS, insert_rows
from hub.store.privacy import erased
from hub.store.tables import processed_messages

log = logging.getLogger(__name__)

Changed = Callable[[str, Iterable[str]], None]


class IdempotentConsumer:
    """The bus handler for one destination.

    A destination that shares the hub's store (`transactional`, the default): the processed-message row
    is inserted first, in the same transaction as the destination's effect: a redelivery finds the row
    and applies nothing; a crash before commit leaves neither. On PostgreSQL a concurrent duplicate
    waits on the row's lock and then sees the conflict.

    An external destination (`transactional = False`) makes its own effect idempotent by the event id;
    the hub holds no write transaction while it answers (an HTTP call must not block the store's other
    writers, SQLite's one writer above all): it applies the event unless the id is recorded already,
    then records it. A crash between the two applies it again, which the event id makes harmless.
    """

    def __init__(
        self,
        destination: str,
        consumer: EventConsumer,
        engine: AsyncEngine,
        changed: Changed,
    ):
        self.destination = destination
        self._consumer = consumer
        self._engine = engine
        self._changed = changed  # told after commit (which also announces the change to other processes)
        self._transactional = bool(getattr(consumer, "transactional", True))

    @tracing.consumer  # a span whose parent is the trace the event carries, when tracing is on
    async def __call__(self, event: CloudEvent) -> None:
        if not self._transactional:
            await self._external(event)
            return
        async with self._engine.begin() as tx:
            if not await self._claim(tx, event):
                return  # applied before: a redelivery
            if await self._erased(tx, [event]):
                return  # about an erased customer: dropped (the claim commits, so it stays dropped)
            customers = await system_call(self.destination, "consume", self._consumer.consume(tx, event))
        self._done(customers)

    @tracing.consumer
    async def batch(self, events: Sequence[CloudEvent]) -> None:
        """Apply events in order as one: the ids checked and recorded in one statement each, the ones
        applied before skipped, one change reaction for the lot. A destination that shares the
        store applies them all in one transaction."""
        unique = list({e.id: e for e in events}.values())  # one of each id, in order of appearance
        if not self._transactional:
            await self._external_batch(unique)
            return
        async with self._engine.begin() as tx:
            claimed = await self._claim_many(tx, unique)
            todo = [e for e in unique if e.id in claimed]
            gone = await self._erased(tx, todo)
            customers = await self._apply(tx, [e for e in todo if _about(e) not in gone])
        self._done(customers)

    async def _apply(self, conn: AsyncConnection, events: Sequence[CloudEvent]) -> set[str]:
        if not events:
            return set()
        if isinstance(self._consumer, BatchEventConsumer):
            applied = self._consumer.consume_batch(conn, events)
            return set(await system_call(self.destination, "consume", applied))
        customers: set[str] = set()
        for event in events:
            one = self._consumer.consume(conn, event)
            customers.update(await system_call(self.destination, "consume", one))
        return customers

    async def _external(self, event: CloudEvent) -> None:
        async with self._engine.connect() as conn:
            seen = await conn.execute(
                select(processed_messages.c.event_id).where(
                    processed_messages.c.destination == self.destination,
                    processed_messages.c.event_id == event.id,
                )
            )
            if seen.first() is not None:
                return  # applied before: a redelivery
            dropped = bool(await self._erased(conn, [event]))
        if dropped:  # about an erased customer: recorded as handled, never sent
            async with self._engine.begin() as tx:
                await self._claim(tx, event)
            return
        async with self._engine.connect() as idle:  # no transaction begun: the system ignores it
            customers = await system_call(self.destination, "consume", self._consumer.consume(idle, event))
        async with self._engine.begin() as tx:
            claimed = await self._claim(tx, event)
        if claimed:
            self._done(customers)

    async def _external_batch(self, events: Sequence[CloudEvent]) -> None:
        async with self._engine.connect() as conn:
            seen = set(
                (
                    await conn.execute(
                        select(processed_messages.c.event_id).where(
                            processed_messages.c.destination == self.destination,
                            processed_messages.c.event_id.in_([e.id for e in events]),
                        )
                    )
                ).scalars()
            )
            todo = [e for e in events if e.id not in seen]
            gone = await self._erased(conn, todo)
        if not todo:
            return  # all applied before: a redelivery
        async with self._engine.connect() as idle:  # no transaction begun: the system ignores it
            customers = await self._apply(idle, [e for e in todo if _about(e) not in gone])
        async with self._engine.begin() as tx:
            claimed = await self._claim_many(tx, todo)
        if claimed:
            self._done(customers)

    async def _claim(self, tx: AsyncConnection, event: CloudEvent) -> bool:
        """Record the event as applied to this destination; False when it was recorded before."""
        row = {"destination": self.destination, "event_id": event.id, "processed_at": utcnow()}
        claimed = await insert_rows(
            tx, processed_messages, [row], conflict=SKIP_CONFLICTS, returning=("event_id",)
        )
        return bool(claimed)

    async def _claim_many(self, tx: AsyncConnection, events: Sequence[CloudEvent]) -> set[str]:
        """Record the events as applied; the ids of those not recorded before."""
        now = utcnow()
        rows = [{"destination": self.destination, "event_id": e.id, "processed_at": now} for e in events]
        claimed = await insert_rows(
            tx, processed_messages, rows, conflict=SKIP_CONFLICTS, returning=("event_id",)
        )
        return {r.event_id for r in claimed}

    def _done(self, customers: Collection[str]) -> None:
        if customers:
            self._changed(self.destination, customers)

    async def _erased(self, conn: AsyncConnection, events: Sequence[CloudEvent]) -> set[str]:
        """The erased customers among those the events are about (one read; none when no event names
        a customer). Logged by event id and type only."""
        gone = await erased(conn, {c for c in map(_about, events) if c is not None})
        if gone:
            dropped = [e for e in events if _about(e) in gone]
            log.info(
                "%s: %d event(s) about erased customers dropped: %s",
                self.destination,
                len(dropped),
                ", ".join(f"{e.type} {e.id}" for e in dropped[:10]),
            )
        return gone


def _about(event: CloudEvent) -> str | None:
    """The customer an event is about: its subject (the hub's events), else `data.customerId`."""
    if is_golden_id(event.subject):
        return event.subject
    data = event.data if isinstance(event.data, dict) else {}
    found = data.get("customerId")
    return found if isinstance(found, str) and is_golden_id(found) else None
