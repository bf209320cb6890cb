"""Delivers daily and weekly flows at their time; realtime flows are consumed continuously.

A batch flow's events wait durably in its queue. At the flow's time one hub process takes the flow's
run and drains the queue into the destination; `hub flows run NAME` is a run as well. Each flow has a
cursor row (`flow_cursors`):

- `last_run_at`, the schedule's cursor: the start of the last completed run (at first sight of a flow,
  its last due time: its first run is the next one). A scheduled run is due while it lies before the
  flow's last due time. A flow whose schedule a mapping reload changes (realtime to daily, weekly to
  daily, another time) starts that schedule afresh the same way: its first run is the next due time.
- `lease_owner` / `lease_until`, the run in progress: taken by a conditional update (so two processes,
  or two rounds of one, never run a flow at once), renewed while the run goes on, given back when it
  ends. A run that outlives its interval therefore never overlaps the next one: that one starts after
  it, once. A run that fails, or is cut by the hub closing, gives the lease back without moving the
  cursor, so the next round runs it again; a process killed mid-run leaves a lease that ends
  `lease_seconds` later. The idempotent consumer skips what the cut run had applied already.
- `last_delivered_at`, the start of the last completed run (null before the first): what the `flows`
  query shows as `lastRunAt`; `delivered`, the events delivered by all runs.

A run missed while the hub was down happens at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, literal, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from hub.config.mapping import Flow, FlowMode
from hub.events import CloudEvent, utcnow
from hub.messaging.bus.base import BatchHandler, Bus, Handler, Progress
from hub.observability import metrics
from hub.store.tables import flow_cursors
from hub.store.types import UTCDateTime, dialect_insert
from hub.waiting import wait_event

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


class FlowBusy(RuntimeError):
    """A run of the flow is in progress (in this process or another); it was not run again."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """A flow's row in `flow_cursors`."""

    last_run_at: datetime  # the schedule's cursor (see the module's docstring)
    last_delivered_at: datetime | None  # the start of the last completed run; None before the first
    running: bool  # a run holds the flow's lease now


class Scheduler:
    # How long a run holds its flow without renewing (it renews every third of it): how long a run
    # cut by a killed process keeps the flow from running again.
    lease_seconds = 60.0

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
        self._handler_for = handler_for
        self._clock = clock  # the schedule's time (tests move it)
        self._wall = utcnow  # the leases' time: real time, whatever the schedule's clock says
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._mapped: dict[str, Flow] | None = None  # every flow of the mapping, by name
        self._restarts: dict[str, datetime] = {}  # flow -> when a reload gave it a new schedule
        self.flows = flows

    @property
    def flows(self) -> list[Flow]:
        return self._flows

    @flows.setter
    def flows(self, flows: list[Flow]) -> None:
        """Replaced whole on a mapping reload (the next round comes at once). A batch flow the reload
        adds or gives another schedule starts that schedule now."""
        now = self._clock()
        if self._mapped is not None:
            for flow in flows:
                before = self._mapped.get(flow.name)
                changed = before is None or _schedule(before) != _schedule(flow)
                if changed and flow.mode is not FlowMode.REALTIME:
                    self._restarts[flow.name] = now
        self._mapped = {f.name: f for f in flows}
        self._flows = [f for f in flows if f.mode is not FlowMode.REALTIME]
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flow-scheduler")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_due()
            except Exception:
                log.exception("scheduler round failed")
            now = self._clock()
            wait = min((next_due(f, now) - now).total_seconds() for f in self._flows) if self._flows else 60.0
            # At least once a minute: a run that failed, or a lease a killed process left, is taken up;
            # at once after a mapping reload.
            await wait_event(self._wake, max(1.0, min(wait, 60.0)))

    async def run_due(self) -> dict[str, int]:
        """Run every batch flow whose time has come, that no run since took care of, and that no
        process runs now; how many events each run delivered. A flow whose run fails is logged and
        left due (the next round runs it again); the others run all the same."""
        done = {}
        now = self._clock()
        for flow in list(self._flows):
            try:
                count = await self._run_flow(flow, now, last_due(flow, now))
            except Exception:
                log.exception("flow %s: the run failed; the next round runs it again", flow.name)
                continue
            if count is not None:
                done[flow.name] = count
        return done

    async def deliver(self, flow: Flow, progress: Progress | None = None) -> int:
        """Deliver what the flow's queue holds now, as a run of its own (`hub flows run NAME`): it counts
        as the flow's last run, and a scheduled run whose time has come already is done by it. Raises
        FlowBusy while a run of the flow is in progress. `progress` is told the events applied so far."""
        count = await self._run_flow(flow, self._clock(), None, progress)
        if count is None:
            raise FlowBusy(f"flow {flow.name!r} is running now; its queue is being delivered")
        return count

    async def _run_flow(
        self, flow: Flow, now: datetime, due: datetime | None, progress: Progress | None = None
    ) -> int | None:
        """One run of the flow: the lease taken (only when `due` lies after the cursor, unless None),
        the queue drained, the run recorded. None when the flow was not run (not due, or running)."""
        owner = uuid.uuid4().hex
        if not await self._claim(flow, owner, now, due):
            return None
        keeping = asyncio.create_task(self._keep(flow, owner), name=f"flow-lease:{flow.name}")
        try:
            handler = self._handler_for(flow)
            if progress is not None:
                handler = counted(handler, progress)
            count = await self._bus.drain(flow.queue, handler)
        except BaseException:  # failed, or cut by the hub closing: the next round runs it again
            await _stopped(keeping)
            with contextlib.suppress(Exception):
                await self._release(flow, owner)
            metrics.flow_run(flow.name, ok=False)
            raise
        await _stopped(keeping)
        await self._done(flow, owner, now, count)
        log.info("flow %s delivered %d events", flow.name, count)
        metrics.flow_run(flow.name, ok=True, events=count)
        return count

    async def _claim(self, flow: Flow, owner: str, now: datetime, due: datetime | None) -> bool:
        wall = self._wall()
        restart = self._restarts.get(flow.name)
        start = last_due(flow, now if restart is None else restart)
        async with self._engine.begin() as tx:
            # A flow seen for the first time starts its schedule now (or when a reload set it): its
            # first run is the next due time.
            await tx.execute(
                dialect_insert(tx, flow_cursors)
                .values(flow=flow.name, last_run_at=start, delivered=0)
                .on_conflict_do_nothing()
            )
            if restart is not None:  # a new schedule starts the same way
                restarted = update(flow_cursors).where(flow_cursors.c.flow == flow.name)
                await tx.execute(restarted.values(last_run_at=_latest(start)))
            free = flow_cursors.c.lease_until.is_(None) | (flow_cursors.c.lease_until < wall)
            claim = update(flow_cursors).where(flow_cursors.c.flow == flow.name, free)
            if due is not None:
                claim = claim.where(flow_cursors.c.last_run_at < due)
            result = await tx.execute(
                claim.values(lease_owner=owner, lease_until=wall + timedelta(seconds=self.lease_seconds))
            )
        if restart is not None and self._restarts.get(flow.name) == restart:
            del self._restarts[flow.name]
        return result.rowcount == 1

    async def _keep(self, flow: Flow, owner: str) -> None:
        """Renew the lease while the run goes on."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                async with self._engine.begin() as tx:
                    await tx.execute(
                        update(flow_cursors)
                        .where(flow_cursors.c.flow == flow.name, flow_cursors.c.lease_owner == owner)
                        .values(lease_until=self._wall() + timedelta(seconds=self.lease_seconds))
                    )
            except Exception:  # a store hiccup: the next renewal may pass, well within the lease
                log.warning("flow %s: renewing the run's lease failed", flow.name, exc_info=True)

    async def _done(self, flow: Flow, owner: str, started: datetime, count: int) -> None:
        async with self._engine.begin() as tx:
            result = await tx.execute(
                update(flow_cursors)
                .where(flow_cursors.c.flow == flow.name, flow_cursors.c.lease_owner == owner)
                .values(
                    # Never backwards (a run by hand before a scheduled one that is still to come).
                    last_run_at=_latest(started),
                    last_delivered_at=started,
                    delivered=flow_cursors.c.delivered + count,
                    lease_owner=None,
                    lease_until=None,
                )
            )
        if result.rowcount != 1:
            # Its lease ran out (the store was unreachable for longer than the lease) and another run
            # took the flow: that one records the run; what both delivered was applied once.
            log.warning("flow %s: the run ended after its lease had run out", flow.name)

    async def _release(self, flow: Flow, owner: str) -> None:
        async with self._engine.begin() as tx:
            await tx.execute(
                update(flow_cursors)
                .where(flow_cursors.c.flow == flow.name, flow_cursors.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    async def runs(self, flows: Iterable[Flow]) -> dict[str, tuple[datetime | None, datetime]]:
        """Each batch flow's last run (None before its first; a run by hand counts) and its next: the
        next due time, or the last one while that run is overdue or in progress (the next round runs
        it, e.g. after downtime)."""
        now = self._clock()
        cursors = await self.cursors()
        runs: dict[str, tuple[datetime | None, datetime]] = {}
        for flow in flows:
            if flow.mode is FlowMode.REALTIME:
                continue
            cursor, due = cursors.get(flow.name), last_due(flow, now)
            last = cursor.last_delivered_at if cursor else None
            since = cursor.last_run_at if cursor else None
            restart = self._restarts.get(flow.name)  # a new schedule the next round starts
            if since is not None and restart is not None:
                since = max(since, last_due(flow, restart))
            runs[flow.name] = (last, due if since is not None and since < due else next_due(flow, now))
        return runs

    async def cursors(self) -> dict[str, Cursor]:
        wall = self._wall()
        c = flow_cursors.c
        async with self._engine.connect() as conn:
            query = select(c.flow, c.last_run_at, c.last_delivered_at, c.lease_until)
            rows = (await conn.execute(query)).all()
        return {
            r.flow: Cursor(r.last_run_at, r.last_delivered_at, running=(r.lease_until or wall) > wall)
            for r in rows
        }


def _schedule(flow: Flow) -> tuple[object, ...]:
    """What decides a flow's due times."""
    return (flow.mode, flow.at, flow.weekday if flow.mode is FlowMode.WEEKLY else None)


def _latest(at: datetime) -> ColumnElement[datetime]:
    """`last_run_at` moved up to `at`, never back."""
    c = flow_cursors.c
    return case((c.last_run_at < at, literal(at, UTCDateTime())), else_=c.last_run_at)


async def _stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class _Counted:
    """A flow's handler that reports the events it applied (the CLI's progress of `hub flows run`)."""

    def __init__(self, inner: Handler, progress: Progress):
        self._inner = inner
        self._progress = progress
        self.applied = 0

    def _count(self, n: int) -> None:
        self.applied += n
        self._progress(self.applied, None)

    async def __call__(self, event: CloudEvent) -> None:
        await self._inner(event)
        self._count(1)


class _CountedBatches(_Counted):
    async def batch(self, events: Sequence[CloudEvent]) -> None:
        await self._inner.batch(events)  # type: ignore[attr-defined]
        self._count(len(events))


def counted(handler: Handler, progress: Progress) -> Handler:
    """The handler, reporting to `progress`; one that takes batches still does."""
    if isinstance(handler, BatchHandler):
        return _CountedBatches(handler, progress)
    return _Counted(handler, progress)
