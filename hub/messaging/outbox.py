"""Transactional outbox and its relay.

`Outbox.add` writes an event in the caller's transaction, beside the state change it reports.
`OutboxRelay` publishes unsent rows in order, with confirms, and marks them sent. A broker outage
delays events (the relay backs off and tries again); it never loses them. A crash between publish
and mark-sent publishes again: consumers are idempotent on the event id.

The relay keeps several windows of publishes in flight: under a constant load RabbitMQ confirms a
persistent message only once its batched fsync ran, a few hundred milliseconds later (measured: confirm
p50 160-900 ms at 500 events/s, bench/RESULTS.md), and a relay that waited for each window's confirms
before reading the next held every new event back that long. Windows are published in order and settled
(marked sent) in order; a failure marks only the prefix before it and starts again from there.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.events import CloudEvent, utcnow
from hub.messaging.bus.base import Bus, BusError, Unroutable, topic_matches
from hub.observability import metrics, tracing
from hub.ports import Tx
from hub.store.db import reading
from hub.store.tables import outbox
from hub.waiting import wait_event

log = logging.getLogger(__name__)

# Any constant will do: it names the relay's lock on PostgreSQL, so one relay publishes at a time
# across hub processes and per-customer order is kept.
RELAY_LOCK = 7301002
# Windows of publishes awaiting their confirms at once; the next read waits for the oldest beyond it.
WINDOWS_IN_FLIGHT = 16


class Outbox:
    """Writes events in the caller's transaction. Types no flow subscribes to are not kept: with
    mandatory routing they could only fail to publish."""

    def __init__(self, patterns: Sequence[str] = ("#",)):
        self.patterns = patterns

    @property
    def patterns(self) -> tuple[str, ...]:
        return self._patterns

    @patterns.setter
    def patterns(self, patterns: Sequence[str]) -> None:
        # Replaced whole on a mapping reload: a reader sees the old tuple or the new one.
        self._patterns = tuple(patterns)

    def routed(self, event_type: str) -> bool:
        return any(topic_matches(p, event_type) for p in self._patterns)

    async def add(self, tx: Tx, events: Sequence[CloudEvent]) -> None:
        events = [e for e in events if self.routed(e.type)]
        if not events:
            return
        events = tracing.stamped(events)  # the trace context goes along, when tracing is on
        now = utcnow()
        await tx.execute(
            outbox.insert(),
            [
                {
                    "event_id": e.id,
                    "type": e.type,
                    "subject": e.subject,
                    "body": e.to_json(),
                    "created_at": now,
                    "attempts": 0,
                }
                for e in events
            ],
        )

    async def backlog(self, engine: AsyncEngine) -> int:
        async with reading(engine).connect() as conn:
            return int(
                (await conn.execute(select(func.count()).where(outbox.c.sent_at.is_(None)))).scalar_one()
            )


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        bus: Bus,
        *,
        batch: int = 200,
        idle: float = 0.5,
        max_backoff: float = 5.0,
        behind_at: int | None = None,
    ):
        self._engine = engine
        self._bus = bus
        self._batch = batch
        self._idle = idle
        self._max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        # A round found `behind_at` events or more waiting: the relay is behind the writers (not stuck:
        # a round that fails clears it, so an outage never holds back the API, it only delays publishing).
        self.behind = False
        self._behind_at = min(batch, behind_at or batch)
        self.route(("#",), ())

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                await self._pipeline()
                self.last_error = None
                backoff = 0.05
                # Everything read was published and settled; a commit since has woken us already.
            except BusError as exc:
                self.behind = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("outbox relay: broker unavailable, retrying in %.2fs (%s)", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            except Exception as exc:  # a store hiccup must not kill the relay
                self.behind = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("outbox relay failed; retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            await wait_event(self._wake, self._idle)
            self._wake.clear()

    def route(self, live: Sequence[str], batches: Sequence[tuple[str, Sequence[str]]]) -> None:
        """What the relay publishes how: an event one of the `live` patterns matches (a realtime flow,
        a broadcast listener) goes to the events exchange on its own, routed by its type; an event of a
        batch flow (queue, patterns) goes into that round's pack for the flow's queue. Replaced whole
        on a mapping reload; an event matching neither is published on its own (and is unroutable)."""
        self._live = tuple(live)
        self._batches = tuple((queue, tuple(patterns)) for queue, patterns in batches)

    async def _publish(self, rows: Sequence[Any]) -> list[BusError | None]:
        """Publish a round: the events on their own, all in flight at once, and one pack per batch flow.
        Per row, what became of it (None: every publish it needed was confirmed)."""
        live, batches = self._live, self._batches
        alone: list[Any] = []
        packs: dict[str, list[Any]] = {}
        for row in rows:
            targets = [q for q, patterns in batches if any(topic_matches(p, row.type) for p in patterns)]
            for queue in targets:
                packs.setdefault(queue, []).append(row)
            if not targets or any(topic_matches(p, row.type) for p in live):
                alone.append(row)
        outcome: dict[int, BusError | None] = {row.seq: None for row in rows}

        async def send_pack(queue: str, packed: list[Any]) -> BusError | None:
            try:
                await self._bus.publish_pack(queue, [r.body for r in packed], f"pack:{queue}:{packed[0].seq}")
            except BusError as exc:
                return exc
            return None

        events = [CloudEvent.from_json(row.body) for row in alone]
        singles, pack_results = await tracing.publishing(events, asyncio.gather(
            self._bus.publish_many(events),
            asyncio.gather(*(send_pack(queue, packed) for queue, packed in packs.items())),
        ))
        for row, result in zip(alone, singles, strict=True):
            outcome[row.seq] = result
        for packed, result in zip(packs.values(), pack_results, strict=True):
            for row in packed:
                outcome[row.seq] = _worse(outcome[row.seq], result)
        return [outcome[row.seq] for row in rows]

    async def relay_once(self) -> int:
        """Publish one batch of unsent events in order and wait for its confirms; returns how many were
        handled. (One round on its own: bench/history.py times it. The running relay pipelines.)"""
        async with reading(self._engine).connect() as conn:
            if not await self._lock(conn):
                return 0
            try:
                rows = await self._read(conn)
                if not rows:
                    return 0
                done, failure = await self._settle(conn, rows, await self._publish(rows))
            finally:
                await self._unlock(conn)
        if failure is not None:
            raise failure
        return done

    async def _pipeline(self) -> None:
        """Publish while there is anything to publish: read a window, publish it without waiting for
        its confirms, read the next as soon as a commit wakes us; settle windows oldest first as their
        confirms come in. Returns when everything read is settled and nothing more is waiting. Raises
        the first failure, after marking the prefix before it (a later window's rows stay unsent and
        are read again, in order, on the next call)."""
        windows: collections.deque[tuple[Sequence[Any], asyncio.Task[list[BusError | None]]]] = (
            collections.deque()
        )
        async with reading(self._engine).connect() as conn:  # autocommit: each statement commits
            if not await self._lock(conn):
                return
            try:
                while True:
                    self._wake.clear()  # a commit from here on wakes the next read
                    rows: Sequence[Any] = []
                    if len(windows) < WINDOWS_IN_FLIGHT:
                        in_flight = None  # the seq range of the windows (a late straggler's may be below)
                        if windows:
                            seqs = [(w[0].seq, w[-1].seq) for w, _ in windows]
                            in_flight = (min(lo for lo, _ in seqs), max(hi for _, hi in seqs))
                        rows = await self._read(conn, in_flight)
                    if rows:
                        windows.append((rows, asyncio.create_task(self._publish(rows))))
                        continue
                    if not windows:
                        return
                    oldest = windows[0][1]
                    if len(windows) < WINDOWS_IN_FLIGHT:
                        woken = asyncio.ensure_future(self._wake.wait())
                        await asyncio.wait({oldest, woken}, return_when=asyncio.FIRST_COMPLETED)
                        woken.cancel()
                    else:
                        await asyncio.wait({oldest})
                    while windows and windows[0][1].done():
                        rows, task = windows.popleft()
                        _, failure = await self._settle(conn, rows, task.result())
                        if failure is not None:
                            raise failure
            finally:
                for _, task in windows:  # published or not, unsettled rows stay unsent: read again
                    task.cancel()
                await asyncio.gather(*(task for _, task in windows), return_exceptions=True)
                await self._unlock(conn)

    async def _lock(self, conn: AsyncConnection) -> bool:
        """This process's relay is the one publishing (PostgreSQL: a session lock, held while windows
        are in flight; released when the relay has nothing more to do, or with a broken connection)."""
        if conn.dialect.name != "postgresql":
            return True
        got = bool((await conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({RELAY_LOCK})")).scalar())
        await conn.commit()
        return got

    async def _unlock(self, conn: AsyncConnection) -> None:
        if conn.dialect.name != "postgresql":
            return
        try:
            await conn.rollback()  # a failed statement leaves the connection's transaction aborted
            await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({RELAY_LOCK})")
            await conn.commit()
        except Exception:  # the lock must not outlive this round: a connection we cannot clear is dropped
            await conn.invalidate()

    async def _read(self, conn: AsyncConnection, in_flight: tuple[int, int] | None = None) -> Sequence[Any]:
        """The next unsent rows in order, past the seq range of the windows `in_flight`. A row below
        that range (a transaction that took its seq earlier and committed later) is read too: it goes
        out late, as it would have in any round after it became visible."""
        query = select(outbox.c.seq, outbox.c.type, outbox.c.body).where(outbox.c.sent_at.is_(None))
        if in_flight is not None:
            query = query.where(or_(outbox.c.seq < in_flight[0], outbox.c.seq > in_flight[1]))
        rows = (await conn.execute(query.order_by(outbox.c.seq).limit(self._batch))).all()
        await conn.commit()
        # Known as soon as a read is done: writers are ahead of the relay.
        self.behind = len(rows) >= self._behind_at
        return rows

    async def _settle(
        self, conn: AsyncConnection, rows: Sequence[Any], outcomes: Sequence[BusError | None]
    ) -> tuple[int, BusError | None]:
        """Mark a window's rows by their publishes' outcomes; how many were handled, and the failure
        that stopped it (only the prefix before the failed row is marked sent)."""
        done: list[int] = []
        unroutable: dict[int, str] = {}
        failure: BusError | None = None
        for row, outcome in zip(rows, outcomes, strict=True):
            if isinstance(outcome, Unroutable):
                # A type no flow subscribes to: record it for operators, don't block the rest.
                unroutable[row.seq] = f"unroutable: {outcome}"
            elif outcome is not None:
                # Stop here: only the prefix before it is marked sent. The broker fails a
                # window as a whole in practice (a lost connection, a refusal); one it confirmed
                # after the failed one is published again, a duplicate consumers ignore.
                failure = outcome
                break
            done.append(row.seq)
        now = utcnow()
        if done:
            await conn.execute(update(outbox).where(outbox.c.seq.in_(done)).values(sent_at=now))
            metrics.relayed(len(done))
        for seq, reason in unroutable.items():
            await conn.execute(update(outbox).where(outbox.c.seq == seq).values(last_error=reason))
            log.warning("outbox event %s %s", seq, reason)
        if failure is not None:
            self.behind = False
            await conn.execute(
                update(outbox)
                .where(outbox.c.seq == rows[len(done)].seq)
                .values(attempts=outbox.c.attempts + 1, last_error=str(failure))
            )
        await conn.commit()
        return len(done), failure


def _worse(a: BusError | None, b: BusError | None) -> BusError | None:
    """Of two outcomes for one event, the one that decides it: not sent beats unroutable beats sent."""
    for outcome in (a, b):
        if outcome is not None and not isinstance(outcome, Unroutable):
            return outcome
    return a or b
