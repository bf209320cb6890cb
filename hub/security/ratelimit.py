"""The rate limit per credential: a token bucket of HUB_RATE_LIMIT requests per second with a burst of
twice that, shared out among the live hub processes.

Each process holds its share (rate / live processes) in memory, so a request costs no round trip; the
processes find each other by a heartbeat row in the store (hub_processes), every `heartbeat` seconds.
A caller spread over N processes gets, in sum, the configured rate; one that reaches a single process
gets that process's share (the usual trade of local limiting; a load balancer spreads callers)."""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import timedelta

from cachetools import LRUCache
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.events import utcnow
from hub.store.tables import hub_processes
from hub.store.types import dialect_insert
from hub.waiting import Periodic

log = logging.getLogger(__name__)


class RateLimiter:
    def __init__(self, rate: float, engine: AsyncEngine, process_id: str, heartbeat: float = 2.0):
        self.rate = rate
        self._engine = engine
        self._process = process_id[:64]
        self._heartbeat = heartbeat
        self.processes = 1
        # credential -> [tokens, last refill (monotonic)]; bounded by LRU (credentials are few).
        self._buckets: LRUCache[str, list[float]] = LRUCache(maxsize=100_000)
        self._ticker: Periodic | None = None

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, credential: str) -> float | None:
        """None when the request may go; else how many seconds until it could (Retry-After)."""
        if self.rate <= 0:
            return None
        rate = self.rate / self.processes
        burst = max(1.0, 2 * rate)
        now = time.monotonic()
        bucket = self._buckets.get(credential)
        if bucket is None:
            bucket = self._buckets[credential] = [burst, now]
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return None
        bucket[0] = tokens
        return (1.0 - tokens) / rate

    def exhausted(self, credential: str) -> float | None:
        """Like take(), without taking: how long until `credential` may go again, or None."""
        if self.rate <= 0:
            return None
        bucket = self._buckets.get(credential)
        if bucket is None:
            return None
        rate = self.rate / self.processes
        tokens = min(max(1.0, 2 * rate), bucket[0] + (time.monotonic() - bucket[1]) * rate)
        return None if tokens >= 1.0 else (1.0 - tokens) / rate

    async def start(self) -> None:
        # SQLite is one hub process (the embedded store): nothing to share out, nothing to write.
        if not self.enabled or self._engine.dialect.name == "sqlite":
            return
        await self._beat()
        self._ticker = Periodic("rate-limit-heartbeat", self._heartbeat, self._beat)
        self._ticker.start()

    async def close(self) -> None:
        if self._ticker is None:
            return
        await self._ticker.stop()
        self._ticker = None
        with contextlib.suppress(Exception):  # the others stop counting us at once, not after a timeout
            async with self._engine.begin() as tx:
                await tx.execute(delete(hub_processes).where(hub_processes.c.id == self._process))

    async def _beat(self) -> None:
        now = utcnow()
        stale = now - timedelta(seconds=3 * self._heartbeat)
        async with self._engine.begin() as tx:
            stmt = dialect_insert(tx, hub_processes).values(id=self._process, seen_at=now)
            await tx.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"seen_at": now}))
            await tx.execute(delete(hub_processes).where(hub_processes.c.seen_at < stale))
            live = (await tx.execute(select(func.count()).select_from(hub_processes))).scalar_one()
        self.processes = max(1, int(live))
