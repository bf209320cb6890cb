"""Transactional outbox and its relay.

`Outbox.add` writes an event in the caller's transaction, beside the state change it reports.
`OutboxRelay` publishes unsent rows in order, with confirms, and marks them sent. A broker outage
delays events (the relay backs off and tries again); it never loses them. A crash between publish
and mark-sent publishes again: consumers are idempotent on the event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.events import CloudEvent, utcnow
from hub.messaging.bus.base import Bus, BusError, Unroutable, topic_matches
from hub.observability import metrics, tracing
from hub.ports import Tx
from hub.store.db import reading
from hub.store.direct import fetch_rows, insert_rows
from hub.store.tables import outbox
from hub.store.types import any_of
from hub.waiting import wait_event

log = logging.getLogger(__name__)

# Any constant will do: it names the relay's lock on PostgreSQL, so one relay publishes at a time
# across hub processes and per-customer order is kept.
RELAY_LOCK = 7301002
RELAY_CHANNEL = "hub_outbox_relay"  # the leading relay LISTENs here for the other processes' commits
KNOWN_TYPES = 1024  # event types whose routing an outbox remembers
# A round's published rows, marked sent in one statement (up to relay_batch seqs).
# The oldest unsent rows, in order: one round.
_UNSENT = (
    select(outbox.c.seq, outbox.c.type, outbox.c.body)
    .where(outbox.c.sent_at.is_(None))
    .order_by(outbox.c.seq)
    .limit(bindparam("batch"))
)
_MARK_SENT = update(outbox).where(any_of(outbox.c.seq, "seqs")).values(sent_at=bindparam("now"))


class Outbox:
    """Writes events in the caller's transaction. Types no flow subscribes to are not kept: with
    mandatory routing they could only fail to publish."""

    def __init__(self, patterns: Sequence[str] = ("#",)):
        self._routing: tuple[tuple[str, ...], dict[str, bool]]
        self.patterns = patterns

    @property
    def patterns(self) -> tuple[str, ...]:
        return self._routing[0]

    @patterns.setter
    def patterns(self, patterns: Sequence[str]) -> None:
        # Replaced whole on a mapping reload (with the answers found under them): a reader sees the old
        # pair or the new one.
        self._routing = (tuple(patterns), {})

    def routed(self, event_type: str) -> bool:
        patterns, known = self._routing
        found = known.get(event_type)
        if found is None:
            found = any(topic_matches(p, event_type) for p in patterns)
            if len(known) < KNOWN_TYPES:  # the catalog's types, and any an adapter makes up
                known[event_type] = found
        return found

    async def add(self, tx: Tx, events: Sequence[CloudEvent]) -> None:
        events = [e for e in events if self.routed(e.type)]
        if not events:
            return
        events = tracing.stamped(events)  # the trace context goes along, when tracing is on
        now = utcnow()
        await insert_rows(
            tx,
            outbox,
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
        self._nudged = False  # woken by this process's commits since the last round: tell the leader
        self._leader: AsyncConnection | None = None  # PostgreSQL: the connection holding the relay's lock
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        # A round found `behind_at` events or more waiting: the relay is behind the writers (not stuck:
        # a round that fails clears it, so an outage never holds back the API, it only delays publishing).
        self.behind = False
        self._behind_at = min(batch, behind_at or batch)
        self.route(("#",), ())

    def wake(self) -> None:
        self._nudged = True
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._step_down()

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                sent = await self.relay_once()
                self.last_error = None
                backoff = 0.05
                if sent >= self._batch:
                    continue  # a full round: more is waiting
                # Otherwise the round took all there was; a commit during it has woken us already.
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
        """Publish one batch of unsent events in order; returns how many were handled (0 also when
        another hub process leads the relay)."""
        if self._engine.dialect.name != "postgresql":
            async with self._engine.begin() as tx:  # SQLite's one writer: the round is one transaction
                return await self._round(tx)
        leader = self._leader or await self._lead()
        if leader is None:
            return 0
        try:
            return await self._round(leader)
        except BaseException:
            # A broker failure lets another process try (its broker may be reachable); a store failure
            # may have left the connection, and with it the lock, in doubt.
            await self._step_down()
            raise

    async def _lead(self) -> AsyncConnection | None:
        """On PostgreSQL one relay publishes across hub processes (which keeps per-customer order): the one
        whose connection holds the relay's lock. It keeps that connection, in autocommit, for its rounds:
        a round is then its read, its publishes and one update (before, each round also began, locked
        and committed: three round trips more, on every event's way to the broker). Another process's
        relay, woken by its own commits, wakes the leader instead (NOTIFY)."""
        conn = await reading(self._engine).connect()
        try:
            got = (await conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({RELAY_LOCK})")).scalar()
            if not got:
                if self._nudged:
                    self._nudged = False
                    await conn.exec_driver_sql(f"SELECT pg_notify('{RELAY_CHANNEL}', '')")
                await conn.close()
                return None
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None  # a connection just used
            await driver.add_listener(RELAY_CHANNEL, self._notified)
        except BaseException:
            await _discard(conn)
            raise
        self._leader = conn
        return conn

    def _notified(self, *_: object) -> None:
        self._wake.set()  # not wake(): this process committed nothing

    async def _step_down(self) -> None:
        """Give up the lead: the connection is closed, not pooled, so its session lock goes with it."""
        leader, self._leader = self._leader, None
        if leader is not None:
            await _discard(leader)

    async def _round(self, conn: AsyncConnection) -> int:
        rows = await fetch_rows(conn, _UNSENT, {"batch": self._batch})
        # Known as soon as the round is read: writers are ahead of the relay.
        self.behind = len(rows) >= self._behind_at
        if not rows:
            return 0
        done: list[int] = []
        unroutable: dict[int, str] = {}
        failure: BusError | None = None
        for row, outcome in zip(rows, await self._publish(rows), strict=True):
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
            await fetch_rows(conn, _MARK_SENT, {"seqs": done, "now": now})
            metrics.relayed(len(done))
        for seq, reason in unroutable.items():
            await conn.execute(update(outbox).where(outbox.c.seq == seq).values(last_error=reason))
            log.warning("outbox event %s %s", seq, reason)
        if failure is not None:
            await conn.execute(
                update(outbox)
                .where(outbox.c.seq == rows[len(done)].seq)
                .values(attempts=outbox.c.attempts + 1, last_error=str(failure))
            )
            raise failure
        return len(done)


async def _discard(conn: AsyncConnection) -> None:
    """Close a connection for good (invalidated: the pool opens a fresh one), whatever state it is in."""
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()


def _worse(a: BusError | None, b: BusError | None) -> BusError | None:
    """Of two outcomes for one event, the one that decides it: not sent beats unroutable beats sent."""
    for outcome in (a, b):
        if outcome is not None and not isinstance(outcome, Unroutable):
            return outcome
    return a or b
