"""The information flows as operators see them (the `flows` query): each flow of the mapping with its
schedule, what waits in its queue, and when a batch flow last ran and runs next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hub.config.mapping import Flow, FlowMode
from hub.messaging.bus.base import Bus, BusError
from hub.messaging.scheduler import Scheduler


@dataclass(frozen=True, slots=True)
class FlowStatus:
    name: str
    source: str
    destination: str
    events: tuple[str, ...]  # routing-key patterns
    mode: FlowMode
    schedule: str  # e.g. "daily at 02:00 UTC"
    pending: int | None  # messages waiting in the flow's queue; None when the broker cannot be asked
    last_run_at: datetime | None  # batch flows that ran: the start of the last run (`hub flows run` too)
    next_run_at: datetime | None  # batch flows


def schedule_of(flow: Flow) -> str:
    """When the flow delivers, in words: "realtime", "daily at 02:00 UTC", "weekly on monday at 02:00 UTC"."""
    if flow.mode is FlowMode.REALTIME:
        return "realtime"
    day = f" on {flow.weekday.name}" if flow.mode is FlowMode.WEEKLY else ""
    return f"{flow.mode.value}{day} at {flow.at:%H:%M} UTC"


async def flow_statuses(flows: Sequence[Flow], scheduler: Scheduler, bus: Bus) -> list[FlowStatus]:
    """The flows in mapping order. The broker being away leaves `pending` unknown and fails nothing."""
    try:
        depth: dict[str, int] | None = {q.queue: q.depth for q in await bus.stats()}
    except BusError:
        depth = None
    runs = await scheduler.runs(flows)
    statuses = []
    for flow in flows:
        last, next_ = runs.get(flow.name, (None, None))
        statuses.append(
            FlowStatus(
                name=flow.name,
                source=flow.source,
                destination=flow.destination,
                events=tuple(flow.events),
                mode=flow.mode,
                schedule=schedule_of(flow),
                pending=None if depth is None else depth.get(flow.queue, 0),
                last_run_at=last,
                next_run_at=next_,
            )
        )
    return statuses
