"""What an operator does to the hub's delivery (the GraphQL operator fields and the /ops page share
these): list dead letters with their reasons, replay them (one, some, or all), and run a batch flow now."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hub.config.mapping import Flow, FlowMode
from hub.core.errors import BadInput, HubError, NotFound
from hub.messaging.bus.base import Bus, BusError
from hub.messaging.scheduler import FlowBusy as Busy
from hub.messaging.scheduler import Scheduler

MAX_IDS = 1000


class UnknownFlow(NotFound):
    code = "UNKNOWN_FLOW"


class FlowBusy(HubError):
    code = "FLOW_BUSY"


class BusUnavailable(HubError):
    code = "BUS_UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    id: str
    queue: str
    reason: str  # as the bus recorded it ("ExceptionClass: message"); the API scrubs it before it shows it
    attempts: int
    dead_at: datetime | None


async def dead_letters(bus: Bus, queue: str | None = None) -> list[DeadLetterInfo]:
    try:
        letters = await bus.dead_letters(queue)
    except BusError as exc:
        raise BusUnavailable(f"the bus cannot list dead letters ({type(exc).__name__})") from None
    return [DeadLetterInfo(d.id, d.queue, d.reason, d.attempts, d.dead_at) for d in letters]


async def replay(bus: Bus, ids: Sequence[str] | None, every: bool) -> int:
    """Send dead letters back to their queues: the ones named, or every one. How many went back."""
    if every == bool(ids):
        raise BadInput("give ids (one or more) or all: true, not both", field="ids")
    if ids is not None and len(ids) > MAX_IDS:
        raise BadInput(f"at most {MAX_IDS} ids at a time", field="ids")
    try:
        return await bus.replay(None if every else [str(i)[:200] for i in ids or ()])
    except BusError as exc:
        raise BusUnavailable(f"the bus cannot replay dead letters ({type(exc).__name__})") from None


def batch_flow(flows: Sequence[Flow], name: str) -> Flow:
    flow = next((f for f in flows if f.name == name), None)
    if flow is None:
        raise UnknownFlow(f"no flow named {name[:80]!r}", flow=name[:80])
    if flow.mode is FlowMode.REALTIME:
        raise BadInput(f"flow {name!r} is realtime: its events are delivered as they come", field="name")
    return flow


async def run_flow(scheduler: Scheduler, flows: Sequence[Flow], name: str) -> int:
    """Deliver a batch flow's waiting events now (it counts as the flow's run); how many were delivered."""
    flow = batch_flow(flows, name)
    try:
        return await scheduler.deliver(flow)
    except Busy as exc:
        raise FlowBusy(f"{exc}; try again when that run is over", flow=name) from None
    except BusError as exc:
        raise BusUnavailable(f"the bus cannot deliver flow {name!r} now ({type(exc).__name__})") from None
