"""outbox-history: the outbox relay's round with 1,000,000 sent rows in the history against the same round
with an empty history, on PostgreSQL + RabbitMQ.

Two fresh databases, migrated as the hub migrates them. One keeps an empty history; the other gets
`HISTORY` rows made the way the hub makes them: inserted unsent (as `Outbox.add` writes them, real
CloudEvent bodies), then marked sent with an UPDATE, as the relay marks them, so the dead tuples and
the dead entries of the unsent partial index are there. Autovacuum cannot be counted on (it is off on the
benchmark server), so what cleans them is the hub's retention pass, which every hub process runs at start
and every minute: both databases get one (`Retention.prune`, with the hub's default retention: the
history is recent, so every row is kept), then the rounds alternate between them.

A round: `PER_ROUND` events written to the outbox in one transaction, then `OutboxRelay.relay_once` until
the backlog is 0 (`BATCH` a call: the relay's default; the hub's HUB_RELAY_BATCH of 1000 only dilutes the
poll's share). Round time = time per relay_once call that published. For the record, the same round on
the 1M database before its retention pass ran (the history as it is without a VACUUM) is measured first.

Ratio = round with 1M sent rows ÷ round with an empty history (medians). Target <= 1.5.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aio_pika
import asyncpg
from services import RABBITMQ_URL, fresh_database, fresh_namespace
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config import Settings
from hub.events import CloudEvent, ContactEventData, make, utcnow
from hub.messaging.bus.base import Route
from hub.messaging.bus.rabbitmq import RabbitBus
from hub.messaging.outbox import Outbox, OutboxRelay
from hub.messaging.retention import Retention
from hub.model import Channel, ContactEventType
from hub.store.db import create_engine, migrate

TARGET = 1.5
HISTORY = 1_000_000
PER_ROUND = 1_000
BATCH = 200
BEFORE_ROUNDS = 3
EVENT_TYPE = "contact.proposition.shown"
QUEUE = "history-bench"
PLACEHOLDER = "00000000-0000-0000-0000-00000000feed"
SOURCE = Settings().source


def _event(n: int, id: str | None = None) -> CloudEvent:
    """A contact event as the API writes it (about the size of the real ones)."""
    data = ContactEventData(eventType=ContactEventType.PROPOSITION_SHOWN, customerId=f"cus_{n % 5000:012d}",
                            contactId=f"con_{n:016d}", channel=Channel.WEBSITE, occurredAt=utcnow(),
                            offerId=f"offer-{n % 40}")
    return make(EVENT_TYPE, data, source=SOURCE, subject=data.customerId, id=id)


async def _fill(url: str) -> tuple[float, float]:
    """`HISTORY` rows inserted unsent, then marked sent; returns (insert s, mark s)."""
    template = _event(0, PLACEHOLDER).to_json().decode()
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        started = time.perf_counter()
        await conn.execute(
            """INSERT INTO outbox (event_id, type, subject, body, created_at, attempts)
               SELECT id, $1, 'cus_000000000000', convert_to(replace($2, $3, id), 'UTF8'), now(), 0
               FROM (SELECT gen_random_uuid()::text AS id FROM generate_series(1, $4)) AS g""",
            EVENT_TYPE, template, PLACEHOLDER, HISTORY,
        )
        inserted = time.perf_counter()
        await conn.execute("UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL")
        return inserted - started, time.perf_counter() - inserted
    finally:
        await conn.close()


class _Side:
    """One database with its outbox and relay; `rounds` collects (ms per publishing call, ms of the
    closing poll that found nothing)."""

    def __init__(self, engine: AsyncEngine, bus: RabbitBus, outbox: Outbox) -> None:
        self.engine = engine
        self.outbox = outbox
        self.relay = OutboxRelay(engine, bus, batch=BATCH)
        self.rounds: list[tuple[float, float]] = []
        self._n = 0

    async def round(self) -> tuple[float, float]:
        events = [_event(self._n + i) for i in range(PER_ROUND)]
        self._n += PER_ROUND
        async with self.engine.begin() as tx:
            await self.outbox.add(tx, events)
        calls: list[float] = []
        while True:
            started = time.perf_counter()
            sent = await self.relay.relay_once()
            elapsed = (time.perf_counter() - started) * 1e3
            if not sent:
                break
            calls.append(elapsed)
        if await self.outbox.backlog(self.engine):
            raise RuntimeError("the relay stopped with a backlog")
        result = (statistics.fmean(calls), elapsed)
        self.rounds.append(result)
        return result


async def _prune(engine: AsyncEngine) -> float:
    """One retention pass as the hub runs it (prune, then VACUUM on PostgreSQL); returns ms."""
    defaults = Settings()
    started = time.perf_counter()
    pruned = await Retention(engine, defaults.outbox_retention_seconds,
                             defaults.processed_retention_seconds).prune()
    if pruned != (0, 0):
        raise RuntimeError(f"retention pruned recent history: {pruned}")
    return (time.perf_counter() - started) * 1e3


def _median(rounds: list[tuple[float, float]], which: int = 0) -> float:
    return statistics.median(r[which] for r in rounds)


async def run(rounds: int = 5) -> list[str]:
    async with fresh_database() as empty_url, fresh_database() as full_url, fresh_namespace(QUEUE) as ns:
        empty_engine, full_engine = create_engine(empty_url), create_engine(full_url)
        bus = RabbitBus(Settings(broker_url=RABBITMQ_URL, bus_namespace=ns))
        sides: list[_Side] = []
        broker = await aio_pika.connect(RABBITMQ_URL)
        try:
            for engine in (empty_engine, full_engine):
                await migrate(engine)
            insert_s, mark_s = await _fill(full_url)
            await bus.start()
            await bus.declare([Route(QUEUE, (EVENT_TYPE,))])
            channel = await broker.channel()
            queue = await channel.get_queue(f"{ns}.{QUEUE}")
            outbox = Outbox((EVENT_TYPE,))
            empty, full = _Side(empty_engine, bus, outbox), _Side(full_engine, bus, outbox)
            sides += [empty, full]

            await empty.round()  # warm-up: the bus's channel and the pool's first connections
            await queue.purge()
            empty.rounds.clear()
            # Without a retention pass: the history as marking rows sent leaves it.
            for _ in range(BEFORE_ROUNDS):
                for side in (empty, full):
                    await side.round()
                    await queue.purge()
            before = full.rounds[:]
            before_empty = _median(empty.rounds)
            empty.rounds.clear()
            full.rounds.clear()

            prune_empty_ms, prune_full_ms = await _prune(empty_engine), await _prune(full_engine)
            for side in (empty, full):  # warm-up after the pass
                await side.round()
                await queue.purge()
                side.rounds.clear()
            for _ in range(rounds):  # alternating, so drift on the machine hits both alike
                for side in (empty, full):
                    await side.round()
                    await queue.purge()
            again_ms = await _prune(full_engine)  # the next minute's pass: what it costs at 1M rows
        finally:
            for side in sides:
                await side.relay.stop()  # gives up the relay's lock and its connection
            await broker.close()
            await bus.close()
            await empty_engine.dispose()
            await full_engine.dispose()
    e, f = _median(empty.rounds), _median(full.rounds)
    b = _median(before)
    ratio = f / e
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    return [
        f"outbox history on PostgreSQL + RabbitMQ: {HISTORY:,} sent rows made in {insert_s:.1f} s (insert "
        f"unsent) + {mark_s:.1f} s (mark sent); first retention pass (prune + VACUUM ANALYZE) "
        f"{prune_full_ms / 1e3:.1f} s on 1M rows, {prune_empty_ms:.0f} ms on the empty history; the next "
        f"pass on 1M rows {again_ms:.0f} ms",
        f"relay round ({PER_ROUND} events, {BATCH} per relay_once) before the retention pass (no VACUUM): "
        f"1M history first round {before[0][0]:.1f} ms per call, median of {BEFORE_ROUNDS} {b:.1f} ms "
        f"(closing poll {_median(before, 1):.2f} ms) vs empty {before_empty:.1f} ms: ratio "
        f"{b / before_empty:.2f}",
        f"relay round after it, medians of {rounds}: 1M history {f:.1f} ms per call (closing poll "
        f"{_median(full.rounds, 1):.2f} ms), empty {e:.1f} ms (closing poll "
        f"{_median(empty.rounds, 1):.2f} ms)",
        f"bench outbox-history: ratio={ratio:.2f} target={TARGET} {verdict} (round with 1M sent rows "
        f"{f:.1f} ms ÷ empty {e:.1f} ms)",
    ]

if __name__ == "__main__":
    for line in asyncio.run(run()):
        print(line)
