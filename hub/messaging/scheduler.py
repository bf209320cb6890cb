"""Delivers daily and weekly flows at their time; realtime flows are consumed continuously.

A batch flow's events wait durably in its queue. At the flow's time one hub process claims the run
(a conditional update of its cursor, so two processes never both run it) and drains the queue into
the destination. A run missed while the hub was down happens at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config.mapping import Flow, FlowMode
from hub.events import utcnow
from hub.messaging.bus.base import Bus, Handler
from hub.store.tables import flow_cursors
from hub.store.types import dialect_insert

log = logging.getLogger(__name__)

def last_due(flow: Flow, now: datetime) -> datetime:
    """The most recent scheduled time at or before `now`."""
    due = now.replace(hour=flow.at.hour, minute=flow.at.minute, second=0, microsecond=0)
    if due > now:
        due -= timedelta(days=1)
    if flow.mode is FlowMode.WEEKLY:
        due -= timedelta(days=(due.weekday() - flow.weekday) % 7)
    return due


def next_due(flow: Flow, now: datetime) -> datetime:
    step = timedelta(days=7 if flow.mode is FlowMode.WEEKLY else 1)
    return last_due(flow, now) + step


class Scheduler:
    def __init__(
        self,
        engine: AsyncEngine,
        bus: Bus,
        flows: list[Flow],
        handler_for: Callable[[Flow], Handler],
        clock: Callable[[], datetime] = utcnow,
    ):
        self._engine = engine
        self._bus = bus
        self.flows = flows
        self._handler_for = handler_for
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    @property
    def flows(self) -> list[Flow]:
        return self._flows

    @flows.setter
    def flows(self, flows: list[Flow]) -> None:
        # Replaced whole on a mapping reload.
        self._flows = [f for f in flows if f.mode is not FlowMode.REALTIME]

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flow-scheduler")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.run_due()
            except Exception:
                log.exception("scheduler round failed")
            now = self._clock()
            wait = min((next_due(f, now) - now).total_seconds() for f in self._flows) if self._flows else 60.0
            await asyncio.sleep(max(1.0, min(wait, 60.0)))

    async def run_due(self) -> dict[str, int]:
        """Run every batch flow whose time has come and that no process ran since."""
        done = {}
        now = self._clock()
        for flow in self._flows:
            if await self._claim(flow, last_due(flow, now), now):
                done[flow.name] = await self.deliver(flow)
        return done

    async def deliver(self, flow: Flow) -> int:
        """Deliver what the flow's queue holds now (also `hub flows run NAME`)."""
        count = await self._bus.drain(flow.queue, self._handler_for(flow))
        async with self._engine.begin() as tx:
            await tx.execute(
                update(flow_cursors)
                .where(flow_cursors.c.flow == flow.name)
                .values(delivered=flow_cursors.c.delivered + count)
            )
        log.info("flow %s delivered %d events", flow.name, count)
        return count

    async def _claim(self, flow: Flow, due: datetime, now: datetime) -> bool:
        async with self._engine.begin() as tx:
            # A flow seen for the first time starts its schedule now: its first run is the next due time.
            await tx.execute(
                dialect_insert(tx, flow_cursors)
                .values(flow=flow.name, last_run_at=due, delivered=0)
                .on_conflict_do_nothing()
            )
            result = await tx.execute(
                update(flow_cursors)
                .where(flow_cursors.c.flow == flow.name, flow_cursors.c.last_run_at < due)
                .values(last_run_at=now)
            )
            return result.rowcount == 1

    async def runs(self, flows: Iterable[Flow]) -> dict[str, tuple[datetime | None, datetime]]:
        """Each batch flow's last scheduled run (None before its first) and its next: the next due time,
        or the last one while that run is overdue (the next round runs it, e.g. after downtime)."""
        now = self._clock()
        cursors = await self.cursors()
        runs: dict[str, tuple[datetime | None, datetime]] = {}
        for flow in flows:
            if flow.mode is FlowMode.REALTIME:
                continue
            ran, due = cursors.get(flow.name), last_due(flow, now)
            # A cursor still on the due time its schedule started from (see _claim) records no run.
            last = None if ran is None or last_due(flow, ran) == ran else ran
            runs[flow.name] = (last, due if ran is not None and ran < due else next_due(flow, now))
        return runs

    async def cursors(self) -> dict[str, datetime]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(flow_cursors.c.flow, flow_cursors.c.last_run_at))
            return {r.flow: r.last_run_at for r in rows}
