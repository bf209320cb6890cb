"""The composition root: builds the hub's parts from settings and the mapping, wires them, starts and
stops them, and swaps in a new mapping on reload. It decides nothing of its own."""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import sys
import threading
import traceback
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config.checks import HUB_SOURCE
from hub.config.loader import Located, MappingError
from hub.config.mapping import Flow, FlowMode, HubMapping
from hub.config.settings import Settings
from hub.core.coalesce import Coalescer
from hub.core.consents import ConsentService
from hub.core.contacts import ContactService
from hub.core.decisions import Decisions
from hub.core.events import EventService
from hub.core.inbound import Inbound
from hub.core.leads import Campaigns, LeadDispatcher, Outbound, Responses
from hub.core.privacy import ERASED, PRIVACY_EVENTS, HubPrivacy, PrivacyService, PrivacyTarget, queue_of
from hub.core.reporting import Owner, Reporting
from hub.core.requests import RequestService
from hub.core.translate import Translator
from hub.core.view import ProfileCache, ViewAssembler
from hub.events import CUSTOMER_CHANGED, REQUEST_STATUS, CloudEvent
from hub.messaging.bus import create_bus
from hub.messaging.bus.base import Bus, BusError, Handler, Route
from hub.messaging.consumer import IdempotentConsumer
from hub.messaging.feed import NbaFeed
from hub.messaging.outbox import Outbox, OutboxRelay
from hub.messaging.pacing import Pacing
from hub.messaging.reactions import ChangeReactions
from hub.messaging.retention import Retention
from hub.messaging.scheduler import Scheduler
from hub.model import HUB_SYSTEM, CustomerView, DecisionRequest, NextBestAction
from hub.ports import PrivacyHandler, ports_of
from hub.registry import Systems, build_systems, load_mapping
from hub.roles import (
    BACK_OFFICE,
    CAMPAIGN_PLANNER,
    CONSENT_REGISTRY,
    CONTACT_REGISTRY,
    DECISION_ENGINE,
    EVENT_DESTINATION,
    LEAD_MANAGER,
    OUTBOUND_CHANNEL,
    PRIVACY_HANDLER,
    PROFILE_SOURCE,
    REQUEST_REGISTRY,
)
from hub.security.gate import Security
from hub.store.db import create_engine, migrate

log = logging.getLogger(__name__)
# A close step reached after the shutdown deadline still gets this long (disposing the store is quick).
CLOSE_STEP_MINIMUM = 0.5


@dataclass(slots=True)
class Wiring:
    """Everything built from one mapping. A request takes the wiring current when it starts and
    finishes on it; a reload builds a new one and swaps it in whole."""

    mapping: HubMapping
    located: Located
    systems: Systems
    translator: Translator
    decisions: Decisions
    contacts: ContactService
    views: ViewAssembler
    events: EventService
    phone_region: str | None
    version: int
    requests: RequestService | None = None  # None when no system plays request_registry
    campaigns: Campaigns | None = None  # None unless systems play campaign_planner and lead_manager
    responses: Responses | None = None  # None unless a system plays lead_manager
    outbound: Outbound | None = None
    inbound: Inbound = field(default_factory=lambda: Inbound({}))  # the hub as a flow's destination
    privacy: PrivacyService | None = None  # erasure and export, fanned out to every system
    consents: ConsentService | None = None  # None unless a system plays consent_registry
    reporting: Reporting | None = None  # reports from the systems that own the facts (hub.core.reporting)
    # startContact's answers, batched across the contacts a group commit started together.
    started_views: Coalescer[str, CustomerView | None] = field(init=False)
    started_nbas: Coalescer[DecisionRequest, list[NextBestAction]] = field(init=False)

    def __post_init__(self) -> None:
        self.started_views = Coalescer(self.views.load_many)
        self.started_nbas = Coalescer(self.decisions.decide_each)


class Hub:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()
        # Names this process in its change announcements, so it can skip its own.
        self.instance = f"{self.settings.source}/process/{uuid.uuid4().hex[:12]}"
        self._inflight = 0
        self._started = False
        self._reload_lock = asyncio.Lock()
        self._retired: set[asyncio.Task[None]] = set()
        self.close_overruns: list[str] = []  # close steps that missed their deadline, with the task stacks
        self.reloads = 0
        self.last_reload_error: str | None = None

    # --- the current wiring, for callers that do not hold one ------------------------------------

    @property
    def mapping(self) -> HubMapping:
        return self.wiring.mapping

    @property
    def systems(self) -> Systems:
        return self.wiring.systems

    @property
    def views(self) -> ViewAssembler:
        return self.wiring.views

    @property
    def contacts(self) -> ContactService:
        return self.wiring.contacts

    @property
    def events(self) -> EventService:
        return self.wiring.events

    @property
    def decisions(self) -> Decisions:
        return self.wiring.decisions

    @property
    def phone_region(self) -> str | None:
        return self.wiring.phone_region

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self, *, consume: bool = True) -> None:
        s = self.settings
        mapping, located = load_mapping(s.mappings_dir)
        self.engine: AsyncEngine = create_engine(
            s.database_url, pool_size=s.db_pool_size, max_overflow=s.db_max_overflow
        )
        try:
            systems = build_systems(mapping, located, s, self.engine)
            await migrate(self.engine, systems.components())
            try:
                await systems.start()
            except BaseException:
                await systems.close()
                raise
        except BaseException:
            await self.engine.dispose()  # a hub that did not start leaves nothing open
            raise
        self.security = Security(s, self.engine, self.instance)
        await self.security.start()
        if not s.auth_required:
            log.warning(
                "HUB_AUTH is off: anyone who can reach this hub may read and change every customer's data. "
                "Set HUB_AUTH=required and create keys (hub keys create) before real data comes in."
            )
        self.bus: Bus = create_bus(s, self.engine)
        await self.bus.start()
        await self.bus.declare(_routes(mapping.flows))
        self.cache = ProfileCache(s.cache_ttl_seconds, s.cache_max_entries)
        self.feed = NbaFeed()
        self.outbox = Outbox(_patterns(mapping.flows))
        self.relay = OutboxRelay(
            self.engine, self.bus, batch=s.relay_batch, idle=s.relay_idle_seconds, behind_at=s.pacing_backlog
        )
        _route_relay(self.relay, mapping.flows)
        self.pacing = Pacing(lambda: self.relay.behind or self.bus.lagging(), s.pacing_max_wait_seconds)
        self.reactions = ChangeReactions(
            self.instance,
            lambda: self.wiring.systems.system(DECISION_ENGINE),
            self._invalidate,
            lambda ids: self.wiring.decisions.forget(ids),
            self.feed.notify,
            self.relay.wake,
            self.bus.publish,
        )
        self.wiring = self._wire(mapping, located, systems, version=1)
        self.privacy_queues: set[str] = set()
        await self._declare_privacy(consume=False)  # before the relay: its events are routable
        self.scheduler = Scheduler(self.engine, self.bus, mapping.flows, self.handler_for)
        await self.bus.broadcast([CUSTOMER_CHANGED], self.reactions.heard)
        self.relay.start()
        self.retention = Retention(
            self.engine, s.outbox_retention_seconds, s.processed_retention_seconds,
            also=[self._expire_exports],
        )
        self.retention.start()
        self.dispatcher = LeadDispatcher(
            lambda: self.wiring.outbound, s.public_url, s.outbound_interval_seconds, s.outbound_batch
        )
        self._consume = consume
        self._consuming: set[str] = set()
        if consume:
            await self._consume_realtime(mapping.flows)
            await self._declare_privacy(consume=True)
            self.scheduler.start()
            self.dispatcher.start()
        self._started = True

    def _wire(self, mapping: HubMapping, located: Located, systems: Systems, version: int) -> Wiring:
        s = self.settings
        translator = Translator(mapping)
        decision_system = systems.system(DECISION_ENGINE)
        decisions = Decisions(
            decision_system,
            systems.one(DECISION_ENGINE),
            mapping.systems[decision_system].timeout_seconds,
            s.decision_cache_seconds,
            s.cache_max_entries,
            budget=s.nba_budget_ms / 1000,
            fallback=mapping.decisions.fallback,
            notify=self.feed.notify,  # a decision that outlived the budget is pushed when it lands
        )
        contacts = ContactService(
            self.engine,
            systems.system(CONTACT_REGISTRY),
            systems.one(CONTACT_REGISTRY),
            self.outbox,
            s.source,
            self.reactions.committed,
            self.cache.keys,
            self.cache.known,
        )
        views = ViewAssembler(
            self.engine, mapping, systems.all(PROFILE_SOURCE), self.cache, translator, contacts
        )
        events = EventService(
            self.engine,
            contacts,
            decisions,
            self.outbox,
            s.source,
            s.max_events_per_call,
            self.reactions.committed,
            self.pacing.turn,
        )
        requests = None
        if systems.players.get(REQUEST_REGISTRY):
            back_office = systems.one(BACK_OFFICE) if systems.players.get(BACK_OFFICE) else None
            requests = RequestService(
                self.engine,
                systems.system(REQUEST_REGISTRY),
                systems.one(REQUEST_REGISTRY),
                back_office,
                contacts,
                decisions,
                self.outbox,
                s.source,
                self.reactions.committed,
            )
        consents = None
        if systems.players.get(CONSENT_REGISTRY):
            consents = ConsentService(
                self.engine, systems.system(CONSENT_REGISTRY), systems.one(CONSENT_REGISTRY), self.outbox,
                s.source, self.reactions.committed,
            )
        campaigns = responses = outbound = None
        if systems.players.get(LEAD_MANAGER):
            lm = systems.one(LEAD_MANAGER)
            responses = Responses(self.engine, lm, self.outbox, s.source, consents)
            registry = systems.system(CONTACT_REGISTRY)
            outbound = Outbound(
                lm,
                systems.all(OUTBOUND_CHANNEL),
                # The CRM's current name, email and address, at send time.
                functools.partial(views.current, registry),
            )
            if systems.players.get(CAMPAIGN_PLANNER):
                planner = systems.one(CAMPAIGN_PLANNER)
                campaigns = Campaigns(self.engine, planner, lm, decisions, self.outbox, s.source)
        region = mapping.identity.default_phone_region or s.default_phone_region
        inbound = Inbound({REQUEST_STATUS: requests.apply_reported} if requests is not None else {})
        privacy = PrivacyService(
            self.engine, _privacy_targets(mapping, systems), self.outbox, s.source, self.reactions.committed,
            s.delivery_limit, s.privacy_export_retention_seconds,
        )
        owners = (DECISION_ENGINE, LEAD_MANAGER, REQUEST_REGISTRY)  # CM, LM, the CRM
        reporting = Reporting(*(_owner(systems, role) for role in owners))
        return Wiring(
            mapping, located, systems, translator, decisions, contacts, views, events, region, version,
            requests, campaigns, responses, outbound, inbound, privacy, consents, reporting,
        )

    async def _declare_privacy(self, *, consume: bool) -> None:
        """One queue per system that handles privacy requests (and the hub's own part), bound to the
        privacy events; consumed by every process. A system that leaves the mapping keeps its queue
        consumed: its pending receipts are answered as failed (hub.core.privacy)."""
        privacy = self.wiring.privacy
        assert privacy is not None
        queues = {queue_of(name): name for name in privacy.handled}
        await self.bus.declare([Route(q, PRIVACY_EVENTS) for q in queues if q not in self.privacy_queues])
        self.privacy_queues.update(queues)
        if consume and self._consume:
            for queue, system in queues.items():
                if queue not in self._consuming:
                    await self.bus.consume(queue, PrivacyQueueHandler(self, system))
                    self._consuming.add(queue)

    async def _expire_exports(self) -> None:
        privacy = self.wiring.privacy
        if privacy is not None and await privacy.expire():
            log.info("exports past HUB_PRIVACY_EXPORT_RETENTION_SECONDS deleted")

    def _invalidate(self, customer_ids: Iterable[str], systems: Iterable[str]) -> None:
        """What a change announcement clears; an erasure (hub.core.privacy) forgets the customers whole."""
        names = tuple(systems)
        if ERASED in names:
            ids = list(customer_ids)
            self.cache.forget(ids)
            self.wiring.decisions.forget(ids)
        else:
            self.cache.invalidate(customer_ids, names)

    async def _consume_realtime(self, flows: Iterable[Flow]) -> None:
        for flow in flows:
            if flow.external:  # its destination reads the queue itself
                continue
            if flow.mode is FlowMode.REALTIME and flow.queue not in self._consuming:
                await self.bus.consume(flow.queue, self.handler_for(flow))
                self._consuming.add(flow.queue)

    async def close(self, step_timeout: float | None = None) -> None:
        """Stop in order: no new batch runs, no more publishing, no more consuming, then the store.
        The steps share one deadline (HUB_SHUTDOWN_SECONDS; `step_timeout` caps each one), so a stuck
        part, such as a broker that holds its connection open and never answers, cannot keep the
        process from stopping; what was pending is logged (and stays in the outbox or its queue for the
        next start). A step reached after the deadline still gets a moment: the store is disposed."""
        if not self._started:
            return
        self._started = False
        for task in list(self._retired):
            task.cancel()
        steps = (
            # First, while the store is whole: the audit log's last entries, the rate limit's heartbeat.
            ("security", self.security.close),
            ("scheduler", self.scheduler.stop),
            ("lead dispatcher", self.dispatcher.stop),
            ("retention", self.retention.stop),
            ("outbox relay", self.relay.stop),
            ("late decisions", self.wiring.decisions.close),
            ("change announcements", self.reactions.close),
            ("bus", self.bus.close),
            ("adapters", self.wiring.systems.close),
            ("store", self.engine.dispose),
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_seconds
        for name, stop in steps:
            timeout = max(deadline - loop.time(), CLOSE_STEP_MINIMUM)
            if step_timeout is not None:
                timeout = min(timeout, step_timeout)
            task = asyncio.create_task(stop(), name=f"close:{name}")
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
                self.close_overruns.append(f"{name}:\n{_task_stacks()}")
                log.error(
                    "closing the %s took over %.1fs; going on. Tasks still running:\n%s",
                    name,
                    timeout,
                    _task_stacks(),
                )
            elif task.exception() is not None:
                log.error("closing the %s failed", name, exc_info=task.exception())

    # --- reload ------------------------------------------------------------------------------------

    async def reload(self, grace: float | None = None) -> bool:
        """Load the mapping again. A valid one replaces the current wiring at once (requests in flight
        finish on the one they started with; the old adapters close after `grace` seconds); an invalid
        one is rejected with its errors, logged, and the current one keeps serving."""
        async with self._reload_lock:
            old = self.wiring
            try:
                mapping, located = load_mapping(self.settings.mappings_dir)
                systems = build_systems(mapping, located, self.settings, self.engine)
                await migrate(self.engine, systems.components())
                await systems.start()
            except MappingError as exc:
                self.last_reload_error = str(exc)
                log.error("mapping reload rejected; still serving version %d:\n%s", old.version, exc)
                return False
            new = self._wire(mapping, located, systems, version=old.version + 1)
            added = [f for f in mapping.flows if f not in old.mapping.flows]
            if added:
                await self.bus.declare(_routes(added))
                self.outbox.patterns = _patterns(mapping.flows)
            _route_relay(self.relay, mapping.flows)  # after the declare: the queues it packs for exist
            self.wiring = new
            self.scheduler.flows = mapping.flows
            if self._consume:
                await self._apply_flow_changes(old.mapping.flows, mapping.flows)
            await self._declare_privacy(consume=True)
            self.cache.clear()  # field maps may have changed: nothing read under the old ones is served
            self.reloads += 1
            self.last_reload_error = None
            log.info(
                "mapping reloaded: version %d (%d systems, %d flows)",
                new.version,
                len(mapping.systems),
                len(mapping.flows),
            )
            retire = asyncio.create_task(
                self._retire(old, self.settings.reload_grace_seconds if grace is None else grace)
            )
            self._retired.add(retire)
            retire.add_done_callback(self._retired.discard)
            return True

    async def _apply_flow_changes(self, before: list[Flow], after: list[Flow]) -> None:
        realtime = {f.queue for f in after if f.mode is FlowMode.REALTIME}
        for queue in list(self._consuming):
            # A flow removed, or now a batch flow: its queue keeps what arrives. Privacy queues stay.
            if queue not in realtime and queue not in self.privacy_queues:
                await self.bus.cancel(queue)
                self._consuming.discard(queue)
        await self._consume_realtime(after)

    async def _retire(self, old: Wiring, grace: float) -> None:
        await asyncio.sleep(grace)
        await old.decisions.close()
        await old.systems.close()

    # --- consuming ---------------------------------------------------------------------------------

    def flow(self, name: str) -> Flow:
        for f in self.mapping.flows:
            if f.name == name:
                return f
        raise KeyError(f"no flow named {name!r}")

    def handler_for(self, flow: Flow) -> Handler:
        """The bus handler for a flow (one event, or a batch): idempotent per destination system (two
        flows into one system apply an event once), applied by the destination of the wiring current
        at delivery."""
        return FlowHandler(self, flow)

    def consumer_for(self, flow: Flow) -> IdempotentConsumer:
        wiring = self.wiring
        current = next((f for f in wiring.mapping.flows if f.name == flow.name), flow)
        destination = (
            wiring.inbound if current.destination == HUB_SOURCE
            else wiring.systems.all(EVENT_DESTINATION)[current.destination]
        )
        return IdempotentConsumer(current.destination, destination, self.engine, self.reactions.committed)

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every accepted event is published and the realtime queues are empty (tests, demo)."""
        realtime = {f.queue for f in self.mapping.flows if f.mode is FlowMode.REALTIME and not f.external}
        realtime |= self.privacy_queues
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


class FlowHandler:
    """A flow's bus handler: one event, or a batch of them in one transaction (hub.messaging.bus)."""

    def __init__(self, hub: Hub, flow: Flow):
        self._hub = hub
        self._flow = flow

    async def __call__(self, event: CloudEvent) -> None:
        consumer = self._hub.consumer_for(self._flow)
        self._hub._inflight += 1
        try:
            await consumer(event)
        finally:
            self._hub._inflight -= 1

    async def batch(self, events: Sequence[CloudEvent]) -> None:
        consumer = self._hub.consumer_for(self._flow)
        self._hub._inflight += len(events)
        try:
            await consumer.batch(events)
        finally:
            self._hub._inflight -= len(events)


class PrivacyQueueHandler:
    """A system's privacy queue's bus handler: answered by the privacy service of the wiring current
    at delivery."""

    def __init__(self, hub: Hub, system: str):
        self._hub = hub
        self._system = system

    async def __call__(self, event: CloudEvent) -> None:
        privacy = self._hub.wiring.privacy
        assert privacy is not None
        self._hub._inflight += 1
        try:
            await privacy.handle(self._system, event)
        finally:
            self._hub._inflight -= 1


def _owner(systems: Systems, role: str) -> Owner:
    """The one system that plays the role, for its reports (hub.core.reporting)."""
    names = systems.players.get(role, [])
    name = names[0] if len(names) == 1 else None
    return Owner(role, name, systems.adapters[name] if name is not None else None)


def _privacy_targets(mapping: HubMapping, systems: Systems) -> list[PrivacyTarget]:
    """The hub's own part, then every system of the mapping: its privacy handler, or why it has none."""
    handlers = systems.all(PRIVACY_HANDLER)
    targets = [PrivacyTarget(HUB_SYSTEM, HubPrivacy())]
    for name, cfg in mapping.systems.items():
        declared = PrivacyHandler in ports_of(systems.classes.get(name, object))
        reason = (
            "not configured for privacy requests (see its adapter's config)" if declared
            else f"adapter {cfg.adapter!r} does not handle privacy requests (no PrivacyHandler port)"
        )
        handler = handlers.get(name)
        targets.append(PrivacyTarget(name, handler, cfg.key, cfg.timeout_seconds, "" if handler else reason))
    return targets


def _routes(flows: Iterable[Flow]) -> list[Route]:
    """A realtime flow's queue is bound by its event types; a batch flow's queue gets its events in
    packs from the relay, addressed to the queue itself (bindings are only ever added: a flow switched
    from realtime to a batch mode keeps its type bindings, and its events come twice, applied once)."""
    return [Route(f.queue, tuple(f.events) if f.mode is FlowMode.REALTIME else ()) for f in flows]


def _route_relay(relay: OutboxRelay, flows: Iterable[Flow]) -> None:
    flows = list(flows)
    live = [p for f in flows if f.mode is FlowMode.REALTIME for p in f.events]
    relay.route(
        [*live, CUSTOMER_CHANGED, *PRIVACY_EVENTS],
        [(f.queue, tuple(f.events)) for f in flows if f.mode is not FlowMode.REALTIME],
    )


def _patterns(flows: Iterable[Flow]) -> list[str]:
    return [*(p for f in flows for p in f.events), CUSTOMER_CHANGED, *PRIVACY_EVENTS]


def _task_stacks() -> str:
    out = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=12, file=out)
    # And the threads' innermost frames: a task may wait on a thread (a store's statement) stuck in C.
    frames = sys._current_frames()
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or 0)
        if frame is not None and thread is not threading.current_thread():
            out.write(f"Thread {thread.name}:\n{''.join(traceback.format_stack(frame)[-3:])}")
    return out.getvalue()


__all__ = ["Hub", "Wiring"]
