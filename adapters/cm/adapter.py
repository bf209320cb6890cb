"""BuiltinCM: the built-in campaign-management system on the hub's own store.

Ports: ProfileSource (segments, offerHistory, attributes; read by golden id), DecisionEngine (offers,
decide in batches), EventConsumer (contact events, customer.created / customer.updated, request.status:
each request's latest status, which segment rules can count; customer.consent: what it may offer where),
CampaignPlanner and PrivacyHandler (the customer's profile erased or exported).

Concurrency: `consume` runs in the caller's transaction and never commits. A profile row is written
with optimistic concurrency (UPDATE ... WHERE version = :old; INSERT ... ON CONFLICT DO NOTHING when
absent); a lost race raises `ConcurrentUpdate`, so the bus rolls back and retries the event. The
learning counters are incremented atomically by an upsert (SQLite and PostgreSQL).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationError
from sqlalchemy import bindparam, case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.events import CUSTOMER_CONSENT, LEAD_RESPONSE, REQUEST_STATUS, ConsentData, RequestStatusData
from hub.ports import (
    AdapterConfig,
    AdapterContext,
    CampaignPlan,
    CampaignPlanner,
    Channel,
    CloudEvent,
    ContactEvent,
    ContactEventType,
    DecisionEngine,
    DecisionRequest,
    EventConsumer,
    FunnelCount,
    Health,
    Lead,
    LeadChannel,
    LeadResponseData,
    MalformedEvent,
    NextBestAction,
    Offer,
    PerDialect,
    Period,
    PermanentError,
    PrivacyHandler,
    PrivacySubject,
    ProfileSource,
    PropositionResponse,
    Record,
    Segment,
    SegmentSize,
    Tx,
    any_of,
    dialect_insert,
    fetch_rows,
    insert_rows,
    new_lead_code,
    read,
    read_contact_event,
    store_health,
    utcnow,
    within,
)
from hub_adapters.cm import policy
from hub_adapters.cm.catalog import Catalog, load_catalog
from hub_adapters.cm.policy import CustomerState
from hub_adapters.cm.tables import (
    MIGRATIONS,
    cm_campaigns,
    cm_offer_events,
    cm_offer_learning,
    cm_profiles,
    metadata,
)

CONTACT_EVENT_TYPES = frozenset(
    {"contact.proposition.shown", "contact.response", "contact.interest.shown", "contact.banner.click"}
)
CUSTOMER_CREATED = "customer.created"
CUSTOMER_UPDATED = "customer.updated"
CUSTOMER_EVENTS = frozenset({CUSTOMER_CREATED, CUSTOMER_UPDATED})
MAX_CUSTOMER_ID = 40


class ConcurrentUpdate(RuntimeError):
    """Another process changed the customer's CM profile first: roll back and retry the event."""


FUNNEL_SHOWN = "SHOWN"
RESPONSES = tuple(r.value for r in PropositionResponse)
PLAN_CHUNK = 500  # customer states a campaign's planning reads at a time
# Read on every view and decision: built once (building it per call costs more CPU than running it).
_PROFILES = select(cm_profiles.c.customer_id, cm_profiles.c.state, cm_profiles.c.version).where(
    any_of(cm_profiles.c.customer_id, "ids")
)
# Every consumed batch locks its customers' states, in id order (two processes never deadlock), and
# writes them back over the versions it locked.
_LOCKED = _PROFILES.order_by(cm_profiles.c.customer_id).with_for_update()
_WRITE_STATES = (
    update(cm_profiles)
    .where(cm_profiles.c.customer_id == bindparam("b_customer"), cm_profiles.c.version == bindparam("b_read"))
    .values(state=bindparam("b_state"), version=bindparam("b_version"), updated_at=bindparam("b_now"))
)


def _upsert_learning(insert: Any) -> Any:
    """Adds (offer, shown, accepted) to the learning counters, atomically."""
    return insert.on_conflict_do_update(
        index_elements=[cm_offer_learning.c.offer_id],
        set_={
            "shown": cm_offer_learning.c.shown + insert.excluded.shown,
            "accepted": cm_offer_learning.c.accepted + insert.excluded.accepted,
        },
    )


_ADD_LEARNING = PerDialect(lambda insert: _upsert_learning(insert(cm_offer_learning)))


class CMConfig(AdapterConfig):
    offers: str = "cm/offers.yaml"  # relative to the mapping's folder
    segments: str = "cm/segments.yaml"
    learning_ttl_seconds: float = Field(1.0, ge=0)


class BuiltinCM:
    """The built-in CM adapter (entry point `builtin-cm`)."""

    ports: ClassVar[tuple[type, ...]] = (
        ProfileSource, DecisionEngine, EventConsumer, CampaignPlanner, PrivacyHandler
    )
    # Also BatchEventConsumer (consume_batch) and OfferReports (funnel, segment sizes): not a role's port,
    # so not in `ports`.
    Config = CMConfig
    metadata = metadata
    migrations = MIGRATIONS

    def __init__(self, ctx: AdapterContext, *, clock: Callable[[], datetime] = utcnow):
        self.system = ctx.system
        self._ctx = ctx
        self._reader = ctx.reader  # it only reads on its own: writes come in the hub's transaction
        self._clock = clock
        if isinstance(ctx.config, CMConfig):
            self.config = ctx.config
        else:
            try:
                self.config = CMConfig.model_validate(dict(ctx.config or {}))
            except ValidationError as exc:
                raise ValueError(f"system {ctx.system!r}: invalid CM config: {exc}") from None
        self._catalog: Catalog | None = None
        self._learning: dict[str, tuple[int, int]] = {}
        self._learning_at: float | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load and validate the catalog; a broken file raises MappingError (file:line: field: ...)."""
        self._catalog = await self.lint()
        self._learning_at = None

    async def lint(self) -> Catalog:
        """The catalog files, validated (`hub mappings validate` calls this too)."""
        # Small files, read at start and on reload: not worth a thread.
        base = Path(self._ctx.mappings_dir or self._ctx.settings.mappings_dir)
        return load_catalog(base, self.config.offers, self.config.segments)

    async def check(self) -> Health:
        if self._catalog is None:
            return Health(False, "CM catalog not loaded (start() was not called or failed)")
        health = await store_health(self._reader, "CM", cm_offer_learning, cm_profiles)
        if not health.ok:
            return health
        c = self._catalog
        return Health(True, f"{len(c.offers)} offers, {len(c.segments)} segments, catalog {c.version}")

    async def close(self) -> None:
        self._learning = {}
        self._learning_at = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            raise RuntimeError(f"system {self.system!r}: the CM catalog is not loaded; call start() first")
        return self._catalog

    # --- ProfileSource ---------------------------------------------------------------------------

    async def fetch(self, keys: Sequence[str]) -> Mapping[str, Record]:
        ids = list(dict.fromkeys(keys))
        if not ids:
            return {}
        catalog = self.catalog
        now = self._clock()
        async with self._reader.connect() as conn:
            rows = await fetch_rows(conn, _PROFILES, {"ids": ids})
        out: dict[str, Record] = {}
        for customer_id, raw, version in rows:
            state = CustomerState.from_dict(raw)
            state.version = version
            out[customer_id] = {
                "segments": [{"id": s.id, "name": s.name}
                             for s in policy.segments_of(state, catalog.segments, now)],
                "offerHistory": policy.offer_history(state),
                "attributes": dict(state.attributes),
            }
        return out

    # --- DecisionEngine --------------------------------------------------------------------------

    async def offers(self) -> list[Offer]:
        return [Offer(o.id, o.title, tuple(o.topics), tuple(o.channels)) for o in self.catalog.offers]

    async def decide(
        self, requests: Sequence[DecisionRequest], pending: Sequence[ContactEvent] = ()
    ) -> list[list[NextBestAction]]:
        if not requests:
            return []
        catalog = self.catalog
        now = self._clock()
        ids = list(dict.fromkeys(r.customer_id for r in requests))
        async with self._reader.connect() as conn:
            states = await self._read_many(conn, ids)
            learning = await self._learning_snapshot(conn)
        for event in pending:  # in memory only: the answer reflects events CM has not consumed yet
            if event.customer_id in states:  # read for this call alone: changed in place
                policy.apply_in_place(states[event.customer_id], _normalise(event), now, catalog)
        return [
            policy.rank(states[r.customer_id], catalog, r.channel, now, learning, r.limit, r.customer_id)
            for r in requests
        ]

    async def _learning_snapshot(self, conn: AsyncConnection) -> dict[str, tuple[int, int]]:
        ttl = self.config.learning_ttl_seconds
        fresh = self._learning_at is not None and time.monotonic() - self._learning_at < ttl
        if not fresh:
            rows = (await conn.execute(
                select(cm_offer_learning.c.offer_id, cm_offer_learning.c.shown, cm_offer_learning.c.accepted)
            )).all()
            self._learning = {r.offer_id: (int(r.shown), int(r.accepted)) for r in rows}
            self._learning_at = time.monotonic()
        return self._learning

    # --- CampaignPlanner -------------------------------------------------------------------------

    async def plan(self, tx: Tx, campaign: CampaignPlan) -> Sequence[Lead]:
        """One lead per eligible customer, over the first of the campaign's channels that the offer and
        the customer allow. Eligible: the offer's segment rules, not removed or suppressed for the
        customer, the customer's contact preferences (attributes `doNotContact: true`, `optOut:
        "EMAIL,PRINT"`) and marketing consent per channel (a letter: only a consent for every channel).
        A letter may carry any offer; email and call center only offers listed for those channels."""
        catalog = self.catalog
        now = self._clock()
        offer = next(o for o in catalog.offers if o.id == campaign.offer_id)
        names = {s.id: s.name for s in catalog.segments}
        leads: list[Lead] = []
        async for chunk in self._candidates(tx, campaign.customer_ids):  # a chunk of states at a time
            for customer_id, state in chunk:
                member = {s.id for s in policy.segments_of(state, catalog.segments, now)}
                if campaign.segment_id is not None and campaign.segment_id not in member:
                    continue
                if policy._eligible_by(offer, member, names) is None:
                    continue
                st = state.offers.get(offer.id)
                if st is not None and (st.removed or (st.suppressed_until and st.suppressed_until > now)):
                    continue
                channel = _reachable_by(campaign.channels, offer.channels, state)
                if channel is None:
                    continue
                dec = policy.decision_id(customer_id, None, state.version, catalog.version, [offer.id])
                leads.append(Lead(
                    id=f"lead_{uuid.uuid4().hex[:20]}", code=new_lead_code(), campaign_id=campaign.id,
                    customer_id=customer_id, offer_id=offer.id, title=offer.title, channel=channel,
                    decision_id=dec, created_at=now,
                ))
        await tx.execute(cm_campaigns.insert().values(
            id=campaign.id, offer_id=campaign.offer_id, segment_id=campaign.segment_id,
            channels=[c.value for c in campaign.channels], customer_ids=list(campaign.customer_ids),
            planned=len(leads), created_at=campaign.created_at,
        ))
        return leads

    async def segments(self) -> Sequence[Segment]:
        return [Segment(s.id, s.name) for s in self.catalog.segments]

    async def campaigns(self, campaign_ids: Sequence[str]) -> Mapping[str, CampaignPlan]:
        ids = list(dict.fromkeys(campaign_ids))
        if not ids:
            return {}
        async with self._reader.connect() as conn:
            rows = (await conn.execute(select(cm_campaigns).where(cm_campaigns.c.id.in_(ids)))).all()
        return {
            r.id: CampaignPlan(
                id=r.id, offer_id=r.offer_id, channels=tuple(LeadChannel(c) for c in r.channels),
                segment_id=r.segment_id, customer_ids=tuple(r.customer_ids), created_at=r.created_at,
            )
            for r in rows
        }

    async def _candidates(
        self, conn: AsyncConnection, customer_ids: Sequence[str]
    ) -> AsyncIterator[list[tuple[str, CustomerState]]]:
        """The customers a campaign looks at, PLAN_CHUNK states at a time: the listed ones, or every
        customer CM knows (a segment's campaign), so memory stays flat in the number of customers."""
        if customer_ids:
            ids = list(dict.fromkeys(customer_ids))
            for at in range(0, len(ids), PLAN_CHUNK):
                states = await self._read_many(conn, ids[at : at + PLAN_CHUNK])
                yield list(states.items())
            return
        after = ""
        while True:
            rows = (await conn.execute(
                select(cm_profiles.c.customer_id, cm_profiles.c.state, cm_profiles.c.version)
                .where(cm_profiles.c.customer_id > after)
                .order_by(cm_profiles.c.customer_id)
                .limit(PLAN_CHUNK)
            )).all()
            if not rows:
                return
            chunk = []
            for row in rows:
                state = CustomerState.from_dict(row.state)
                state.version = row.version
                chunk.append((row.customer_id, state))
            yield chunk
            after = rows[-1].customer_id

    # --- OfferReports ------------------------------------------------------------------------------

    async def funnel(
        self, period: Period, channel: Channel | None = None, offer_id: str | None = None
    ) -> list[FunnelCount]:
        f = cm_offer_events.c

        def count(*kinds: str) -> Any:
            return func.coalesce(func.sum(case((f.kind.in_(kinds), 1), else_=0)), 0)

        query = (
            select(
                f.offer_id, f.channel, count(FUNNEL_SHOWN).label("shown"),
                count(*RESPONSES).label("responded"),
                count(PropositionResponse.ACCEPTED.value).label("accepted"),
                count(PropositionResponse.REJECTED.value).label("rejected"),
            )
            .group_by(f.offer_id, f.channel)
            .order_by(f.offer_id, f.channel)
        )
        query = within(query, f.at, period)
        if channel is not None:
            query = query.where(f.channel == channel.value)
        if offer_id is not None:
            query = query.where(f.offer_id == offer_id)
        async with self._reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            FunnelCount(r.offer_id, Channel(r.channel), int(r.shown), int(r.responded), int(r.accepted),
                        int(r.rejected))
            for r in rows
            if r.channel in Channel.__members__
        ]

    async def segment_sizes(self) -> list[SegmentSize]:
        """Segments are rules over each customer's state, evaluated now: every profile is read, a chunk
        at a time (memory stays flat in the number of customers)."""
        catalog = self.catalog
        now = self._clock()
        sizes = dict.fromkeys((s.id for s in catalog.segments), 0)
        async with self._reader.connect() as conn:
            async for chunk in self._candidates(conn, ()):
                for _, state in chunk:
                    for segment in policy.segments_of(state, catalog.segments, now):
                        sizes[segment.id] = sizes.get(segment.id, 0) + 1
        return [SegmentSize(s.id, s.name, sizes.get(s.id, 0)) for s in catalog.segments]

    # --- PrivacyHandler --------------------------------------------------------------------------

    async def erase(self, tx: Tx, subject: PrivacySubject) -> str:
        """The customer's profile goes: attributes, counters, offer history, requests. The learning
        counters are over all customers (no one's in particular) and stay."""
        gone = await tx.execute(delete(cm_profiles).where(cm_profiles.c.customer_id == subject.customer_id))
        return f"{gone.rowcount or 0} profile removed"

    async def export(self, tx: Tx, subject: PrivacySubject) -> dict[str, Any]:
        row = (await tx.execute(
            select(cm_profiles.c.state, cm_profiles.c.version, cm_profiles.c.updated_at)
            .where(cm_profiles.c.customer_id == subject.customer_id)
        )).first()
        if row is None:
            return {}
        state = CustomerState.from_dict(row.state)
        now = self._clock()
        return {
            "attributes": dict(state.attributes),
            "segments": [{"id": s.id, "name": s.name}
                         for s in policy.segments_of(state, self.catalog.segments, now)],
            "offerHistory": policy.offer_history(state),
            "offers": {offer_id: st.to_dict() for offer_id, st in sorted(state.offers.items())},
            "counters": {k: dict(v) for k, v in state.counters.items()},
            "requests": {k: v.to_dict() for k, v in sorted(state.requests.items())},
            "consents": {k: dict(v) for k, v in sorted(state.consents.items())},
            "updatedAt": row.updated_at,
        }

    # --- EventConsumer ---------------------------------------------------------------------------

    async def consume(self, tx: Tx, event: CloudEvent) -> set[str]:
        catalog = self.catalog
        now = self._clock()
        if event.type in CONTACT_EVENT_TYPES or event.type == LEAD_RESPONSE:
            contact = _read_contact_event(event)
            state, version = await self._locked(tx, contact.customer_id, now)
            new = policy.apply_event(state, contact, now, catalog)
            if new.version == state.version:  # already applied (event id remembered in the state)
                return set()
            await self._write(tx, contact.customer_id, new, version, now)
            await self._learn(tx, contact)
            if event.type != LEAD_RESPONSE:  # a lead's response is counted by LM, in its campaign
                await self._add_facts(tx, [contact])
            return {contact.customer_id}
        if event.type in CUSTOMER_EVENTS:
            customer_id, attributes = _read_customer_event(event)
            if not attributes:
                return set()  # nothing CM keeps: no profile written, no change announced
            state, version = await self._locked(tx, customer_id, now)
            new = policy.apply_attributes(state, attributes)
            if new.version == state.version:
                return set()
            await self._write(tx, customer_id, new, version, now)
            return {customer_id}
        if event.type == REQUEST_STATUS:
            request = _read_request_status(event)
            state, version = await self._locked(tx, request.customerId, now)
            new = policy.apply_request_status(state, request)
            if new.version == state.version:  # older than the status kept, or the same again
                return set()
            await self._write(tx, request.customerId, new, version, now)
            return {request.customerId}
        if event.type == CUSTOMER_CONSENT:
            consent = _read_consent(event)
            state, version = await self._locked(tx, consent.customerId, now)
            new = policy.apply_consent(state, consent)
            if new.version == state.version:  # older than the statement kept, or the same again
                return set()
            await self._write(tx, consent.customerId, new, version, now)
            return {consent.customerId}
        return set()

    async def consume_batch(self, tx: Tx, events: Sequence[CloudEvent]) -> set[str]:
        """Events in order, as `consume` one by one would apply them, with one statement per step for
        the lot: the customers' states locked together, changed in memory, written back; the learning
        counters summed per offer."""
        catalog = self.catalog
        now = self._clock()
        parsed: list[tuple[str, ContactEvent | RequestStatusData | ConsentData | dict[str, Any]]] = []
        of_leads: set[str] = set()  # lead responses: counted by LM, in their campaigns, not in the funnel
        for event in events:
            if event.type in CONTACT_EVENT_TYPES or event.type == LEAD_RESPONSE:
                contact = _read_contact_event(event)
                parsed.append((contact.customer_id, contact))
                if event.type == LEAD_RESPONSE:
                    of_leads.add(contact.id)
            elif event.type in CUSTOMER_EVENTS:
                customer_id, attributes = _read_customer_event(event)
                if attributes:  # without any, nothing CM keeps
                    parsed.append((customer_id, attributes))
            elif event.type == REQUEST_STATUS:
                request = _read_request_status(event)
                parsed.append((request.customerId, request))
            elif event.type == CUSTOMER_CONSENT:
                consent = _read_consent(event)
                parsed.append((consent.customerId, consent))
        if not parsed:
            return set()
        locked = await self._locked_many(tx, sorted({cid for cid, _ in parsed}), now)
        # Read for this transaction alone: the states are changed in place.
        states = {cid: state for cid, (state, _) in locked.items()}
        learned: dict[str, list[int]] = {}
        facts: list[ContactEvent] = []
        changed: set[str] = set()
        for cid, item in parsed:
            if isinstance(item, ContactEvent):
                if not policy.apply_in_place(states[cid], item, now, catalog):
                    continue  # already applied (event id remembered in the state)
                if item.id not in of_leads:
                    facts.append(item)
                shown, accepted = _learning_of(item)
                if shown or accepted:
                    counts = learned.setdefault(item.offer_id or "", [0, 0])
                    counts[0] += shown
                    counts[1] += accepted
            elif isinstance(item, RequestStatusData):
                if not policy.request_status_in_place(states[cid], item):
                    continue  # older than the status kept, or the same again
            elif isinstance(item, ConsentData):
                if not policy.consent_in_place(states[cid], item):
                    continue  # older than the statement kept, or the same again
            elif not policy.attributes_in_place(states[cid], item):
                continue
            changed.add(cid)
        if changed:
            # One statement for all: the rows are locked by `_locked_many` (one writer on SQLite), so the
            # version each was read at is still its version.
            await tx.execute(
                _WRITE_STATES,
                [
                    {"b_customer": cid, "b_read": locked[cid][1], "b_state": states[cid].to_dict(),
                     "b_version": states[cid].version, "b_now": now}
                    for cid in sorted(changed)
                ],
            )
        if learned:  # in one order for every process: no deadlock between them
            await self._add_learning(tx, [(o, learned[o][0], learned[o][1]) for o in sorted(learned)])
        await self._add_facts(tx, facts)
        return changed

    async def _locked_many(
        self, tx: Tx, customer_ids: list[str], now: datetime
    ) -> dict[str, tuple[CustomerState, int]]:
        """`_locked` for many customers at once, locked in id order (so two processes never deadlock)."""
        empty = CustomerState().to_dict()
        await insert_rows(  # the new customers' empty states; one statement for any number of them
            tx,
            cm_profiles,
            [{"customer_id": cid, "state": empty, "version": 0, "updated_at": now} for cid in customer_ids],
            conflict=("customer_id",),
        )
        rows = await fetch_rows(tx, _LOCKED, {"ids": customer_ids})
        out = {}
        for row in rows:
            state = CustomerState.from_dict(row.state)
            state.version = row.version
            out[row.customer_id] = (state, row.version)
        return out

    async def _locked(self, tx: Tx, customer_id: str, now: datetime) -> tuple[CustomerState, int]:
        """The customer's state, locked until `tx` ends: consumers of one customer in several hub
        processes queue up here instead of racing (FOR UPDATE on PostgreSQL; SQLite has one writer)."""
        await tx.execute(
            dialect_insert(tx, cm_profiles)
            .values(customer_id=customer_id, state=CustomerState().to_dict(), version=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=[cm_profiles.c.customer_id])
        )
        row = (await tx.execute(
            select(cm_profiles.c.state, cm_profiles.c.version)
            .where(cm_profiles.c.customer_id == customer_id)
            .with_for_update()
        )).one()
        state = CustomerState.from_dict(row.state)
        state.version = row.version  # the row's version is the truth
        return state, row.version

    async def _read_many(self, conn: AsyncConnection, ids: list[str]) -> dict[str, CustomerState]:
        rows = await fetch_rows(conn, _PROFILES, {"ids": ids})
        states = {cid: CustomerState() for cid in ids}
        for row in rows:
            state = CustomerState.from_dict(row.state)
            state.version = row.version  # the row's version is the truth
            states[row.customer_id] = state
        return states

    async def _write(self, tx: Tx, customer_id: str, state: CustomerState, old_version: int,
                     now: datetime) -> None:
        """Write the state over `old_version`, as the next version."""
        new_version = old_version + 1
        state.version = new_version
        # The row is locked by `_locked`; the version check guards against a caller that did not lock.
        result = await tx.execute(
            update(cm_profiles)
            .where(cm_profiles.c.customer_id == customer_id, cm_profiles.c.version == old_version)
            .values(state=state.to_dict(), version=new_version, updated_at=now)
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate(
                f"CM profile {customer_id!r} changed concurrently (expected version {old_version}); retry"
            )

    async def _learn(self, tx: Tx, event: ContactEvent) -> None:
        shown, accepted = _learning_of(event)
        if shown or accepted:
            await self._add_learning(tx, [(event.offer_id or "", shown, accepted)])

    async def _add_facts(self, tx: Tx, events: Sequence[ContactEvent]) -> None:
        """The funnel's facts of applied contact events: a proposition shown, a response (an event
        counts once: keyed by its id)."""
        rows = [
            {"event_id": e.id, "offer_id": e.offer_id, "channel": e.channel.value, "kind": kind,
             "at": e.occurred_at}
            for e in events
            if e.offer_id and (kind := _fact_kind(e)) is not None
        ]
        if rows:
            await insert_rows(tx, cm_offer_events, rows, conflict=("event_id",))

    async def _add_learning(self, tx: Tx, counts: list[tuple[str, int, int]]) -> None:
        """Add (offer, shown, accepted) to the learning counters, atomically, in one statement."""
        await tx.execute(
            _ADD_LEARNING(tx),
            [{"offer_id": o, "shown": shown, "accepted": accepted} for o, shown, accepted in counts],
        )


# --- payloads --------------------------------------------------------------------------------------


def _learning_of(event: ContactEvent) -> tuple[int, int]:
    """What an event teaches about its offer: (shown, accepted) to add; (0, 0) for nothing."""
    if not event.offer_id:
        return 0, 0
    shown = int(event.type is ContactEventType.PROPOSITION_SHOWN)
    accepted = int(event.type is ContactEventType.PROPOSITION_RESPONSE
                   and event.response is PropositionResponse.ACCEPTED)
    return shown, accepted


def _fact_kind(event: ContactEvent) -> str | None:
    """SHOWN, or the response (ACCEPTED, REJECTED, LATER), for the funnel; None for other events."""
    if event.type is ContactEventType.PROPOSITION_SHOWN:
        return FUNNEL_SHOWN
    if event.type is ContactEventType.PROPOSITION_RESPONSE and event.response is not None:
        return event.response.value
    return None


def _normalise(event: ContactEvent) -> ContactEvent:
    if event.occurred_at.tzinfo is None:
        return dataclasses.replace(event, occurred_at=event.occurred_at.replace(tzinfo=UTC))
    return event


def _read_contact_event(event: CloudEvent) -> ContactEvent:
    """A contact event; a response to an outbound lead is read as the response to its offer."""
    try:
        contact = _lead_response(event) if event.type == LEAD_RESPONSE else read_contact_event(event)
    except MalformedEvent as exc:
        raise PermanentError(str(exc)) from exc
    return _normalise(contact)


def _reachable_by(
    wanted: Sequence[LeadChannel], offered: Sequence[Channel], state: CustomerState
) -> LeadChannel | None:
    """The first wanted channel the offer may go by, the customer has not opted out of and has not
    withheld marketing consent for (a letter has no consent of its own: only one for every channel)."""
    attributes = state.attributes
    if attributes.get("doNotContact") is True:
        return None
    raw = attributes.get("optOut")  # "EMAIL" or "EMAIL,PRINT" (attributes are scalars), or a list
    parts = raw if isinstance(raw, list) else str(raw).split(",") if raw else []
    opted_out = {str(c).strip().upper() for c in parts}
    for channel in wanted:
        if channel.value in opted_out:
            continue
        front = channel.value if channel.value in Channel.__members__ else None  # a letter: none
        if policy.withheld(state, policy.MARKETING, front):
            continue
        if channel is LeadChannel.PRINT or channel.value in {c.value for c in offered}:
            return channel
    return None


def _lead_response(event: CloudEvent) -> ContactEvent:
    data = read(event, LeadResponseData)
    return ContactEvent(
        id=event.id,
        type=ContactEventType.PROPOSITION_RESPONSE,
        customer_id=data.customerId,
        contact_id=data.leadId,
        channel=data.channel,
        occurred_at=data.at,
        offer_id=data.offerId,
        response=data.response,
        decision_id=data.decisionId,
    )


def _read_consent(event: CloudEvent) -> ConsentData:
    try:
        return read(event, ConsentData)
    except MalformedEvent as exc:
        raise PermanentError(str(exc)) from exc


def _read_request_status(event: CloudEvent) -> RequestStatusData:
    try:
        return read(event, RequestStatusData)
    except MalformedEvent as exc:
        raise PermanentError(str(exc)) from exc


def _read_customer_event(event: CloudEvent) -> tuple[str, dict[str, Any]]:
    customer_id = event.data.get("customerId")
    if not isinstance(customer_id, str) or not customer_id or len(customer_id) > MAX_CUSTOMER_ID:
        raise PermanentError(
            f"{event.type} {event.id}: customerId must be a string of 1-{MAX_CUSTOMER_ID} characters"
        )
    attributes = event.data.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise PermanentError(f"{event.type} {event.id}: attributes must be an object")
    return customer_id, attributes
