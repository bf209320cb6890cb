"""What the /ops page shows, gathered from the hub: health per system, the bus and the store; the flows;
queues, dead letters and the outbox; the marketing reports over a period. No HTML here (render.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text

from hub.api.errors import public_detail, scrub
from hub.api.health import bounded_health
from hub.core import operations
from hub.core.errors import BadInput
from hub.core.flows import FlowStatus, flow_statuses
from hub.core.reporting import CampaignResult, Report, Reporting, period_of
from hub.messaging.bus.base import BusError, QueueStats
from hub.model.report import FunnelCount, Period, RequestCount, SegmentSize
from hub.runtime import Hub

SLOW_SHARE = 0.5  # a check that takes half the system's timeout or more is "slow"
DEFAULT_DAYS = 30  # the marketing panels' period when none is chosen: the last 30 days, today included
MAX_REASON = 300


@dataclass(frozen=True, slots=True)
class SystemHealth:
    name: str
    state: str  # up, slow, down, breaker open, breaker half-open
    detail: str
    millis: int
    essential: bool


@dataclass(frozen=True, slots=True)
class Overview:
    systems: list[SystemHealth]
    bus_ok: bool
    bus_detail: str
    store_ok: bool
    store_detail: str
    outbox_backlog: int | None
    relay_error: str | None
    mapping_version: int


async def _system(name: str, adapter: Any, timeout: float, essential: bool) -> SystemHealth:
    started = time.perf_counter()
    health = await bounded_health(adapter)
    elapsed = time.perf_counter() - started
    breaker = getattr(getattr(adapter, "breaker", None), "state", None)
    if breaker is not None and str(breaker) != "closed":
        state = f"breaker {breaker}"
    elif not health.ok:
        state = "down"
    elif elapsed >= SLOW_SHARE * timeout:
        state = "slow"
    else:
        state = "up"
    return SystemHealth(name, state, public_detail(health.detail) or "", round(elapsed * 1000), essential)


async def overview(hub: Hub) -> Overview:
    systems = hub.systems
    configs = systems.mapping.systems
    checks = await asyncio.gather(*(
        _system(name, adapter, configs[name].timeout_seconds, configs[name].essential)
        for name, adapter in systems.adapters.items()
    ))
    try:
        stats = await hub.bus.stats()
        lagging = "; consumers lagging" if hub.bus.lagging() else ""
        bus_ok, bus_detail = True, f"{len(stats)} queues{lagging}"
    except BusError as exc:
        bus_ok, bus_detail = False, public_detail(f"{type(exc).__name__}: {exc}") or ""
    started = time.perf_counter()
    try:
        async with hub.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        store_ok, store_detail = True, f"answers in {round((time.perf_counter() - started) * 1000)} ms"
        backlog: int | None = await hub.outbox.backlog(hub.engine)
    except Exception as exc:  # the store being away is what this panel is for: say so, do not fail
        store_ok, store_detail, backlog = False, f"unavailable ({type(exc).__name__})", None
    return Overview(
        list(checks), bus_ok, bus_detail, store_ok, store_detail, backlog,
        public_detail(hub.relay.last_error), hub.wiring.version,
    )


async def flows(hub: Hub) -> list[FlowStatus]:
    return await flow_statuses(hub.wiring.mapping.flows, hub.scheduler, hub.bus)


@dataclass(frozen=True, slots=True)
class Queues:
    queues: list[QueueStats]
    bus_error: str | None
    dead_letters: list[operations.DeadLetterInfo]
    outbox_backlog: int
    relay_error: str | None


async def queues(hub: Hub) -> Queues:
    try:
        stats, bus_error = await hub.bus.stats(), None
        letters = await operations.dead_letters(hub.bus)
    except (BusError, operations.BusUnavailable) as exc:
        stats, letters = [], []
        bus_error = public_detail(f"{type(exc).__name__}: {exc}")
    letters = [
        operations.DeadLetterInfo(d.id, d.queue, scrub(d.reason, MAX_REASON), d.attempts, d.dead_at)
        for d in letters
    ]
    return Queues(stats, bus_error, letters, await hub.outbox.backlog(hub.engine),
                  public_detail(hub.relay.last_error))


@dataclass(frozen=True, slots=True)
class Chosen:
    """The period as the marketer chose it: UTC days, `to` included (the form's values echo back)."""

    period: Period
    start: date
    end: date


def chosen_period(start: str | None, end: str | None, today: date | None = None) -> Chosen:
    """From the query string's `from` and `to` (YYYY-MM-DD, UTC days, both included); the last
    DEFAULT_DAYS days when not given. A bad date is the caller's mistake (BadInput)."""
    today = today or datetime.now(UTC).date()
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError:
        raise BadInput("dates read YYYY-MM-DD", field="from" if start else "to") from None
    if last < first:
        raise BadInput("`to` is before `from`", field="to")
    period = period_of(
        datetime(first.year, first.month, first.day, tzinfo=UTC),
        datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1),
    )
    return Chosen(period, first, last)


@dataclass(frozen=True, slots=True)
class Marketing:
    funnel: Report[FunnelCount]
    campaigns: Report[CampaignResult]
    segments: Report[SegmentSize]
    requests: Report[RequestCount]


async def marketing(hub: Hub, period: Period) -> Marketing:
    reporting = hub.wiring.reporting
    assert isinstance(reporting, Reporting)
    funnel, campaigns, segments, requests = await asyncio.gather(
        reporting.funnel(period),
        reporting.campaign_results(period),
        reporting.segment_sizes(),
        reporting.request_counts(period),
    )
    return Marketing(funnel, campaigns, segments, requests)
