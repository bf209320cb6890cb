"""The hub process: wires store, bus, adapters and use cases together, starts and stops them."""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from collections.abc import Iterable, Sequence

from hub.bus import create_bus
from hub.bus.base import BusError, Handler, Route
from hub.config import Settings
from hub.core import changes
from hub.core.consumer import IdempotentConsumer
from hub.core.contacts import ContactService
from hub.core.events import EventService
from hub.core.feed import NbaFeed
from hub.core.outbox import Outbox, OutboxRelay
from hub.core.scheduler import Scheduler
from hub.core.view import ProfileCache, ViewAssembler
from hub.events import CloudEvent
from hub.mapping.models import Flow, FlowMode
from hub.registry import build_systems, load_mapping
from hub.store.db import create_engine, migrate

log = logging.getLogger(__name__)


class Hub:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()
        # Names this process in its change announcements, so it can skip its own.
        self.instance = f"{self.settings.source}/process/{uuid.uuid4().hex[:12]}"
        self._inflight = 0
        self._started = False
        self.close_overruns: list[str] = []  # close steps that missed their deadline, with the task stacks

    async def start(self, *, consume: bool = True) -> None:
        s = self.settings
        self.mapping, self.located = load_mapping(s)
        self.engine = create_engine(s.database_url)
        await migrate(self.engine)
        self.systems = build_systems(self.mapping, self.located, s, self.engine)
        await self.systems.start()
        self.bus = create_bus(s, self.engine)
        await self.bus.start()
        await self.bus.declare([Route(f.queue, tuple(f.events)) for f in self.mapping.flows])

        self.cache = ProfileCache(s.cache_ttl_seconds, s.cache_max_entries)
        self.feed = NbaFeed()
        self.outbox = Outbox([*(p for f in self.mapping.flows for p in f.events), changes.CUSTOMER_CHANGED])
        self.phone_region = self.mapping.identity.default_phone_region or s.default_phone_region
        self.relay = OutboxRelay(self.engine, self.bus, batch=s.relay_batch, idle=s.relay_idle_seconds)
        self.views = ViewAssembler(self.engine, self.mapping, self.systems.profile_sources, self.cache)
        self.decisions = self.systems.decision_engine
        registry_system = self.mapping.roles.contact_registry
        self.contacts = ContactService(
            self.engine,
            self.systems.contact_registry,
            self.outbox,
            s.source,
            self._committed,
            lambda ids: changes.changed(self.instance, registry_system, ids),
        )
        self.events = EventService(
            self.engine,
            self.contacts,
            self.decisions,
            self.outbox,
            s.source,
            s.max_events_per_call,
            self._committed,
        )
        self.scheduler = Scheduler(self.engine, self.bus, self.mapping.flows, self.handler_for)
        await self.bus.broadcast([changes.CUSTOMER_CHANGED], self._changed_elsewhere)
        self.relay.start()
        if consume:
            for flow in self.mapping.flows:
                if flow.mode is FlowMode.REALTIME:
                    await self.bus.consume(flow.queue, self.handler_for(flow))
            self.scheduler.start()
        self._started = True

    async def close(self, step_timeout: float = 15.0) -> None:
        """Stop in order: no new batch runs, no more publishing, no more consuming, then the store.
        Each step has a deadline, so a stuck part cannot keep the process from stopping; what was
        pending is logged (and stays in the outbox or its queue for the next start)."""
        if not self._started:
            return
        self._started = False
        steps = (
            ("scheduler", self.scheduler.stop),
            ("outbox relay", self.relay.stop),
            ("bus", self.bus.close),
            ("adapters", self.systems.close),
            ("store", self.engine.dispose),
        )
        for name, stop in steps:
            task = asyncio.create_task(stop(), name=f"close:{name}")
            done, _ = await asyncio.wait({task}, timeout=step_timeout)
            if not done:
                task.cancel()
                self.close_overruns.append(f"{name}:\n{_task_stacks()}")
                log.error(
                    "closing the %s took over %.0fs; going on. Tasks still running:\n%s",
                    name,
                    step_timeout,
                    _task_stacks(),
                )
            elif task.exception() is not None:
                log.error("closing the %s failed", name, exc_info=task.exception())

    def flow(self, name: str) -> Flow:
        for f in self.mapping.flows:
            if f.name == name:
                return f
        raise KeyError(f"no flow named {name!r}")

    def handler_for(self, flow: Flow) -> Handler:
        # Idempotency is per destination system: two flows into one system apply an event once.
        consumer = IdempotentConsumer(
            flow.destination,
            self.systems.consumers[flow.destination],
            self.engine,
            self.outbox,
            self.instance,
            self._applied,
        )

        async def handle(event: CloudEvent) -> None:
            self._inflight += 1
            try:
                await consumer(event)
            finally:
                self._inflight -= 1

        return handle

    def _committed(self, customer_ids: Sequence[str]) -> None:
        """A use case committed: clear the registry's cached reads and wake the relay."""
        self.cache.invalidate(customer_ids, [self.mapping.roles.contact_registry])
        self.relay.wake()

    def _applied(self, destination: str, customer_ids: Iterable[str]) -> None:
        """This process applied an event: react now, and wake the relay for the announcement."""
        ids = list(customer_ids)
        self.cache.invalidate(ids, [destination])
        if destination == self.mapping.roles.decision_engine:
            self.feed.notify(ids)
        self.relay.wake()

    async def _changed_elsewhere(self, event: CloudEvent) -> None:
        """Another hub process changed customers' data: clear what this one cached, push NBAs."""
        if event.source == self.instance:
            return  # reacted already, at commit
        system, ids = changes.read_changed(event)
        self.cache.invalidate(ids, [system])
        if system == self.mapping.roles.decision_engine:
            self.feed.notify(ids)

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every accepted event is published and the realtime queues are empty (tests, demo)."""
        realtime = {f.queue for f in self.mapping.flows if f.mode is FlowMode.REALTIME}
        deadline = asyncio.get_running_loop().time() + timeout
        quiet = 0
        while True:
            backlog = await self.outbox.backlog(self.engine)
            try:
                depth = sum(q.depth for q in await self.bus.stats() if q.queue in realtime)
            except BusError:  # reconnecting: not settled yet
                depth = -1
            quiet = quiet + 1 if backlog == 0 and depth == 0 and self._inflight == 0 else 0
            if quiet >= 3:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(
                    f"hub did not settle: outbox {backlog}, queued {depth}, in flight {self._inflight}"
                )
            await asyncio.sleep(0.02)


def _task_stacks() -> str:
    out = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=12, file=out)
    return out.getvalue()
