"""Retention: the outbox's sent rows and the idempotent consumer's processed-message ids are history, and
history is pruned, so the relay's poll and the consumers' claims stay as fast on day 300 as on day 1.

Sent outbox rows are kept `HUB_OUTBOX_RETENTION_SECONDS` (for diagnosis), processed-message ids
`HUB_PROCESSED_RETENTION_SECONDS`: longer than any message can wait to be redelivered (a dead letter
replayed after that is applied again, so keep it above your dead-letter handling time). Every hub process
prunes; the deletes are idempotent, in small batches, and never touch an unsent row.

On PostgreSQL each round ends with `VACUUM (SKIP_LOCKED, ANALYZE)` of the two history tables. The hub
cannot count on autovacuum (it may be off, or far behind), and marking a row sent is an UPDATE: it leaves
a dead tuple, and a dead entry at the front of the unsent partial index that every poll of the relay reads
past until a VACUUM removes it (bench outbox-history: 1M rows marked sent and no VACUUM, the relay's round
took 1.7x as long as on an empty history; after the VACUUM, no longer). ANALYZE keeps the poll's plan an
index scan, which marks as dead, for the polls after it, the few entries a VACUUM leaves (PostgreSQL skips
the index pass while under 2 % of a table's pages have dead rows). SKIP_LOCKED skips a table another
process is vacuuming, so hub processes never queue behind each other; the statement has a time limit, and
a failure is logged and retried next round, like the prune.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Delete, Select, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.events import utcnow
from hub.store.tables import outbox, processed_messages

log = logging.getLogger(__name__)

BATCH = 5_000
# The longest a round's VACUUM may run (it is cancelled then, and the next round starts over).
VACUUM_TIMEOUT_SECONDS = 600.0
HISTORY = (outbox, processed_messages)


class Retention:
    def __init__(
        self,
        engine: AsyncEngine,
        outbox_seconds: float,
        processed_seconds: float,
        every: float = 60.0,
        clock: Callable[[], datetime] = utcnow,
        also: Sequence[Callable[[], Awaitable[object]]] = (),
    ):
        self._engine = engine
        self._also = tuple(also)  # more history to prune each round (an export's personal data)
        self._outbox = timedelta(seconds=outbox_seconds)
        self._processed = timedelta(seconds=processed_seconds)
        self._every = every
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:  # the store may be away: try again next round
                log.exception("pruning history failed; retrying")
            await asyncio.sleep(self._every)

    async def prune(self) -> tuple[int, int]:
        """Delete what is past retention; returns (outbox rows, processed ids) deleted."""
        now = self._clock()
        sent = await self._drain(
            select(outbox.c.seq).where(outbox.c.sent_at.is_not(None), outbox.c.sent_at < now - self._outbox),
            lambda keys: delete(outbox).where(outbox.c.seq.in_(keys)),
        )
        seen = await self._drain(
            select(processed_messages.c.destination, processed_messages.c.event_id).where(
                processed_messages.c.processed_at < now - self._processed
            ),
            lambda keys: delete(processed_messages).where(
                processed_messages.c.destination.in_({d for d, _ in keys}),
                processed_messages.c.event_id.in_({e for _, e in keys}),
                processed_messages.c.processed_at < now - self._processed,
            ),
        )
        if sent or seen:
            log.info("pruned %d sent outbox rows and %d processed-message ids", sent, seen)
        for job in self._also:
            await job()
        await self.vacuum()
        return sent, seen

    async def vacuum(self) -> None:
        """PostgreSQL only: VACUUM (and ANALYZE) the history tables, so the dead tuples and dead index
        entries that marking rows sent and pruning leave behind go. Never raises: a failure is logged and
        the next round tries again."""
        if self._engine.dialect.name != "postgresql":
            return  # SQLite reuses freed pages itself; nothing there slows the poll down
        quote = self._engine.dialect.identifier_preparer.format_table
        tables = ", ".join(quote(t) for t in HISTORY)
        started = time.perf_counter()
        try:
            async with self._engine.connect() as conn:
                # VACUUM cannot run in a transaction block.
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await auto.exec_driver_sql(f"SET statement_timeout = {int(VACUUM_TIMEOUT_SECONDS * 1000)}")
                try:
                    await auto.exec_driver_sql(f"VACUUM (SKIP_LOCKED, ANALYZE) {tables}")
                finally:
                    await auto.exec_driver_sql("RESET statement_timeout")
        except Exception:  # the store may be away, or the vacuum ran out of time: next round
            log.warning("vacuuming %s failed; retrying next round", tables, exc_info=True)
            return
        log.debug("vacuumed %s in %.0f ms", tables, (time.perf_counter() - started) * 1e3)

    async def _drain(self, find: Select[Any], remove: Callable[[list[Any]], Delete]) -> int:
        """Delete in batches, each its own short transaction: a writer never waits long on the prune."""
        total = 0
        while True:
            async with self._engine.begin() as tx:
                rows = (await tx.execute(find.limit(BATCH))).all()
                if not rows:
                    return total
                keys = [r[0] if len(r) == 1 else tuple(r) for r in rows]
                await tx.execute(remove(keys))
            total += len(rows)
            if len(rows) < BATCH:
                return total
