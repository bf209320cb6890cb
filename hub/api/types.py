"""GraphQL types: thin views over the core's model. Resolvers read through per-request DataLoaders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub import model
from hub.api.context import Context, check_limit
from hub.config.mapping import FlowMode
from hub.core.events import Recorded
from hub.core.flows import FlowStatus
from hub.core.leads import Campaign as CampaignView
from hub.model import (
    CampaignStatus,
    Channel,
    ContactEventType,
    DecisionRequest,
    LeadChannel,
    LeadStatus,
    PropositionResponse,
    RequestKind,
    RequestStatus,
)
from hub.security.scopes import CUSTOMER_READ_PII

if TYPE_CHECKING:
    from hub.api.privacy import Consent

# Attribute names that hold personal data (shown only with customer:read:pii).
PII_ATTRIBUTES = frozenset({"address", "addresses", "birthDate", "dateOfBirth", "birthday", "iban"})

# strawberry.enum registers the core's enums for GraphQL and returns them unchanged.
strawberry.enum(Channel, description="A front-end channel that runs contacts.")
strawberry.enum(ContactEventType, description="What happened during a contact.")
strawberry.enum(PropositionResponse, description="A customer's answer to an offer.")
strawberry.enum(RequestKind, description="What a customer request asks for.")
strawberry.enum(
    RequestStatus,
    description="Where a customer request stands. Allowed moves: OPEN -> any other; IN_PROGRESS <-> "
    "WAITING_FOR_CUSTOMER; either -> COMPLETED, REJECTED or CANCELLED; those three are final.",
)


@strawberry.type(description="A segment the customer is in, as decided by CM.")
class Segment:
    id: strawberry.ID
    name: str


@strawberry.type(description="What CM has applied for one offer and this customer.")
class OfferHistory:
    offer_id: strawberry.ID
    shown: int
    accepted: int
    rejected: int
    later: int
    last_shown_at: datetime | None

    @classmethod
    def of(cls, h: model.OfferHistory) -> OfferHistory:
        return cls(
            offer_id=strawberry.ID(h.offer_id),
            shown=h.shown,
            accepted=h.accepted,
            rejected=h.rejected,
            later=h.later,
            last_shown_at=h.last_shown_at,
        )


@strawberry.type(description="A next best action: an offer ranked for one customer in one channel.")
class NextBestAction:
    offer_id: strawberry.ID
    title: str
    channel: Channel
    priority: float
    score: float
    reason: str
    decision_id: strawberry.ID = strawberry.field(
        description="CM's id of the decision; `fallback:<offerId>` for a default action."
    )
    fallback: bool = strawberry.field(
        description="A configured default action (the mapping's decisions.fallback), answered because CM "
        "did not decide within the hub's budget (HUB_NBA_BUDGET_MS) or could not answer; CM's late "
        "answer is pushed to nextBestActions subscribers."
    )

    @classmethod
    def of(cls, n: model.NextBestAction) -> NextBestAction:
        return cls(
            offer_id=strawberry.ID(n.offer_id),
            title=n.title,
            channel=n.channel,
            priority=n.priority,
            score=n.score,
            reason=n.reason,
            decision_id=strawberry.ID(n.decision_id),
            fallback=n.fallback,
        )


@strawberry.type(description="An offer in CM's catalog.")
class Offer:
    id: strawberry.ID
    title: str
    topics: list[str]
    channels: list[Channel]

    @classmethod
    def of(cls, o: model.Offer) -> Offer:
        return cls(id=strawberry.ID(o.id), title=o.title, topics=list(o.topics), channels=list(o.channels))


@strawberry.type(description="One status a request got: which, when, from whom, and why.")
class RequestStatusChange:
    status: RequestStatus
    at: datetime
    by: str
    note: str | None

    @classmethod
    def of(cls, c: model.StatusChange) -> RequestStatusChange:
        return cls(status=c.status, at=c.at, by=c.by, note=c.note)


@strawberry.type(description="A customer request (quote, service, complaint), owned by the CRM.")
class CustomerRequest:
    id: strawberry.ID
    kind: RequestKind
    subject: str
    details: str | None
    status: RequestStatus
    contact_id: strawberry.ID
    customer_id: strawberry.ID
    created_at: datetime
    offer_id: strawberry.ID | None
    history: list[RequestStatusChange] = strawberry.field(description="Every status it got, oldest first.")

    @classmethod
    def of(cls, r: model.CustomerRequest) -> CustomerRequest:
        return cls(
            id=strawberry.ID(r.id),
            kind=r.kind,
            subject=r.subject,
            details=r.details,
            status=r.status,
            contact_id=strawberry.ID(r.contact_id),
            customer_id=strawberry.ID(r.customer_id),
            created_at=r.created_at,
            offer_id=strawberry.ID(r.offer_id) if r.offer_id else None,
            history=[RequestStatusChange.of(c) for c in r.history],
        )


@strawberry.type(description="One interaction of one customer in one channel.")
class Contact:
    id: strawberry.ID
    customer_id: strawberry.ID
    channel: Channel
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None

    @classmethod
    def of(cls, c: model.Contact) -> Contact:
        return cls(
            id=strawberry.ID(c.id),
            customer_id=strawberry.ID(c.customer_id),
            channel=c.channel,
            started_at=c.started_at,
            ended_at=c.ended_at,
            outcome=c.outcome,
        )

    @strawberry.field(description="The customer this contact belongs to.")
    async def customer(
        self, info: Info[Context, None]
    ) -> Annotated[Customer, strawberry.lazy("hub.api.types")] | None:
        view = await info.context.customers.load(str(self.customer_id))
        return Customer.of(view) if view else None


@strawberry.type(description="Lineage: which system supplied a field of the view, and when it was read.")
class FieldSource:
    field: str = strawberry.field(description="The unified field, e.g. name, emails, attributes.tier.")
    system: str
    fetched_at: datetime

    @classmethod
    def of(cls, s: model.FieldSource) -> FieldSource:
        return cls(field=s.field, system=s.system, fetched_at=s.fetched_at)


@strawberry.type(description="The unified customer, merged from every system that knows them.")
class Customer:
    id: strawberry.ID
    name: str | None
    # Personal data: null, with a FORBIDDEN error, for a caller without customer:read:pii.
    emails: list[str] | None
    phones: list[str] | None
    products: list[str]
    segments: list[Segment]
    offer_history: list[OfferHistory]
    unavailable_systems: list[str] = strawberry.field(
        description="Systems that could not be read: the view is partial when this is not empty."
    )
    view: strawberry.Private[model.CustomerView]

    @strawberry.field(
        description="Free attributes, by name (text, numbers, booleans). Personal ones (addresses, birth "
        "dates: PII_ATTRIBUTES) only for a caller with customer:read:pii; they are in `addresses` too."
    )
    def attributes(self, info: Info[Context, None]) -> JSON:
        attributes = dict(self.view.attributes)
        if not info.context.principal.allows(CUSTOMER_READ_PII):
            hidden = sorted(k for k in attributes if k in PII_ATTRIBUTES)
            for name in hidden:
                del attributes[name]
            if hidden:
                info.context.forbidden(
                    f"Customer.attributes.{', '.join(hidden)} need the scope {CUSTOMER_READ_PII!r}; left out",
                    CUSTOMER_READ_PII,
                    info.path.as_list(),
                )
        return cast(JSON, attributes)

    @strawberry.field(description="The customer's postal addresses (from the attributes address/addresses).")
    def addresses(self) -> list[str] | None:
        found = self.view.attributes.get("addresses", self.view.attributes.get("address"))
        if found is None:
            return []
        return [str(a) for a in found] if isinstance(found, list) else [str(found)]

    @strawberry.field(description="The hub's own latest contacts of the customer, newest first.")
    async def contacts(self, info: Info[Context, None]) -> list[Contact]:
        # Read only when asked: a view without contacts waits for its systems alone.
        return [Contact.of(c) for c in await info.context.contacts.load(str(self.id))]

    @strawberry.field(description="The customer's requests from the CRM, newest first; one status or all.")
    async def requests(
        self, info: Info[Context, None], status: RequestStatus | None = None
    ) -> list[CustomerRequest]:
        found = await info.context.requests.load(str(self.id))
        return [CustomerRequest.of(r) for r in found if status is None or r.status is status]

    @strawberry.field(
        description="The customer's consents per purpose and channel, from the consent registry (the CRM); "
        "what is not recorded is given. NBAs and outbound leads respect them."
    )
    async def consents(
        self, info: Info[Context, None]
    ) -> list[Annotated[Consent, strawberry.lazy("hub.api.privacy")]]:
        from hub.api.privacy import consents_of  # it builds on this module's types

        return await consents_of(info, str(self.id))

    @strawberry.field(
        description="Per field of the view: the system that supplied the value and when it was read."
    )
    async def sources(self, info: Info[Context, None]) -> list[FieldSource]:
        out = [FieldSource.of(s) for s in self.view.sources]
        if await info.context.contacts.load(str(self.id)):
            out.append(FieldSource(field="contacts", system=model.HUB_SYSTEM, fetched_at=datetime.now(UTC)))
        return out

    @classmethod
    def of(cls, v: model.CustomerView) -> Customer:
        return cls(
            id=strawberry.ID(v.id),
            name=v.name,
            emails=v.emails,
            phones=v.phones,
            products=v.products,
            segments=[Segment(id=strawberry.ID(s.id), name=s.name) for s in v.segments],
            offer_history=[OfferHistory.of(h) for h in v.offer_history],
            unavailable_systems=sorted(v.unavailable),
            view=v,
        )

    @strawberry.field(description="CM's current next best actions, highest score first.")
    async def next_best_actions(
        self, info: Info[Context, None], channel: Channel | None = None, limit: int = 3
    ) -> list[NextBestAction]:
        check_limit(limit)
        request = DecisionRequest(str(self.id), channel, limit)
        nbas = await info.context.next_best_actions(request, info.path.as_list())
        return [NextBestAction.of(n) for n in nbas]


@strawberry.input(description="At least one key that identifies the visitor.")
class IdentificationInput:
    email: str | None = None
    phone: str | None = None
    customer_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="A golden id (cus_…, as `Customer.id`) identifies that customer (UNKNOWN_CUSTOMER when "
        "there is none); any other value is taken as the customer number.",
        deprecation_reason="Use customerNumber for the customer's number; give a known customer's id here.",
    )
    cookie_id: str | None = None
    customer_number: str | None = strawberry.field(
        default=None, description="The customer's number, as the company's systems know it."
    )


@strawberry.input(description="A system's own id for a customer: a key of the kind named after the system.")
class SystemKeyInput:
    system: str
    id: str


@strawberry.input
class StartContactInput:
    channel: Channel
    identification: IdentificationInput
    name: str | None = None


@strawberry.input
class SubmitRequestInput:
    contact_id: strawberry.ID
    kind: RequestKind
    subject: str = strawberry.field(description="1 to 200 characters.")
    details: str | None = strawberry.field(default=None, description="At most 4000 characters.")
    offer_id: strawberry.ID | None = strawberry.field(
        default=None, description="The offer a quote is for (CM's catalog): held as a product once completed."
    )


async def _started_customer(root: StartContactPayload, info: Info[Context, None]) -> Customer:
    view = await info.context.customer(root.customer_id, info.path.as_list(), together=True)
    assert view is not None, "a started contact's customer exists"
    return Customer.of(view)


async def _started_nbas(root: StartContactPayload, info: Info[Context, None]) -> list[NextBestAction]:
    nbas = await info.context.next_best_actions(
        DecisionRequest(root.customer_id, root.channel, 3), info.path.as_list(), together=True
    )
    return [NextBestAction.of(n) for n in nbas]


@strawberry.type
class StartContactPayload:
    # The view and CM's ranking are read only when the caller selects them: a channel that asks for the
    # contact id alone pays for neither (they are most of startContact's work: bench/RESULTS.md).
    customer_id: strawberry.Private[str]
    channel: strawberry.Private[Channel]
    contact: Contact
    customer: Customer = strawberry.field(resolver=_started_customer)
    created: bool
    next_best_actions: list[NextBestAction] = strawberry.field(resolver=_started_nbas)
    unlinked_keys: list[str] = strawberry.field(
        default_factory=list,
        description="Keys given that were not linked to this customer, by kind (email, phone, customerId, "
        "cookieId): a key that identifies another customer, which only a caller with identity:merge may "
        "attach, or a placeholder value that identifies no one (HUB_BLOCKED_KEY_VALUES).",
    )


@strawberry.input
class ContactEventInput:
    type: ContactEventType
    offer_id: strawberry.ID | None = None
    response: PropositionResponse | None = None
    topic: str | None = None
    occurred_at: datetime | None = None
    decision_id: strawberry.ID | None = strawberry.field(
        default=None, description="The NBA's decisionId this event responds to, when known."
    )


@strawberry.type
class RecordContactEventsPayload:
    accepted: int
    event_ids: list[strawberry.ID]
    # CM's ranking after the events, run only when the caller selects nextBestActions.
    decide: strawberry.Private[Callable[[], Awaitable[Recorded]]]

    @strawberry.field
    async def next_best_actions(self, info: Info[Context, None]) -> list[NextBestAction]:
        decided = await self.decide()
        if decided.decisions_error is not None:
            info.context.unavailable(decided.decisions_error, info.path.as_list())
        return [NextBestAction.of(n) for n in decided.next_best_actions]


@strawberry.type(description="One destination queue as operators see it.")
class QueueStatus:
    queue: str
    depth: int
    dead_letters: int


@strawberry.type(description="Delivery health for operators.")
class Operations:
    queues: list[QueueStatus]
    outbox_backlog: int
    relay_error: str | None
    bus_error: str | None = strawberry.field(description="Why queue figures are missing, when they are.")


@strawberry.type(description="One entry of the audit log: who did what, on what, when, with what outcome.")
class AuditEntry:
    at: datetime
    who: str = strawberry.field(description="The key's name, the JWT's subject, or a CLI command's OS user.")
    via: str = strawberry.field(description="key, jwt, open (HUB_AUTH=off) or cli.")
    action: str = strawberry.field(description="The operation, e.g. Mutation.startContact or keys.revoke.")
    target: str | None = strawberry.field(description="The id it acted on, when it names one.")
    outcome: str = strawberry.field(description="ok, or the error code.")


strawberry.enum(FlowMode, description="How a flow delivers: as events happen, or daily or weekly at a time.")


@strawberry.type(description="An information flow of the mapping: its route, its mode, how far it has got.")
class Flow:
    name: str
    source: str = strawberry.field(description="The system the events come from (`hub` for the hub's own).")
    destination: str = strawberry.field(description="The system the flow delivers to.")
    events: list[str] = strawberry.field(description="Routing-key patterns of the events it carries.")
    mode: FlowMode
    schedule: str = strawberry.field(description='When it delivers, e.g. "daily at 02:00 UTC".')
    pending: int | None = strawberry.field(
        description="Messages waiting in the flow's queue for its destination (a batch flow's events are "
        "packed, so one may hold several); null when the broker cannot be asked."
    )
    last_run_at: datetime | None = strawberry.field(
        description="When the batch flow's last run started (a scheduled run, or `hub flows run`); null for "
        "realtime flows and before the first run."
    )
    next_run_at: datetime | None = strawberry.field(
        description="When the batch flow runs next (past while a run is overdue); null for realtime."
    )

    @classmethod
    def of(cls, f: FlowStatus) -> Flow:
        return cls(
            name=f.name,
            source=f.source,
            destination=f.destination,
            events=list(f.events),
            mode=f.mode,
            schedule=f.schedule,
            pending=f.pending,
            last_run_at=f.last_run_at,
            next_run_at=f.next_run_at,
        )


strawberry.enum(LeadChannel, name="OutboundChannel", description="A channel that delivers outbound leads.")
strawberry.enum(LeadStatus, description="Where a lead stands with LM.")
strawberry.enum(CampaignStatus, description="PLANNED while any lead waits for its channel; DONE after.")


@strawberry.type(description="An outbound offer for one customer over one channel (CM plans, LM sends).")
class Lead:
    id: strawberry.ID
    code: str = strawberry.field(description="What the customer carries back: in the link, on the letter.")
    offer_id: strawberry.ID
    title: str
    customer_id: strawberry.ID
    campaign_id: strawberry.ID | None
    channel: LeadChannel
    status: LeadStatus
    sent_at: datetime | None
    responded_at: datetime | None
    response: PropositionResponse | None
    response_channel: Channel | None = strawberry.field(description="Where the response came in.")
    decision_id: strawberry.ID
    detail: str | None = strawberry.field(description="The channel's delivery id, or why it failed.")

    @strawberry.field(description="The customer the lead is for (the unified view).")
    async def customer(self, info: Info[Context, None]) -> Customer | None:
        view = await info.context.customers.load(str(self.customer_id))
        return Customer.of(view) if view else None

    @classmethod
    def of(cls, lead: model.Lead) -> Lead:
        return cls(
            id=strawberry.ID(lead.id),
            code=lead.code,
            offer_id=strawberry.ID(lead.offer_id),
            title=lead.title,
            customer_id=strawberry.ID(lead.customer_id),
            campaign_id=strawberry.ID(lead.campaign_id) if lead.campaign_id else None,
            channel=lead.channel,
            status=lead.status,
            sent_at=lead.sent_at,
            responded_at=lead.responded_at,
            response=lead.response,
            response_channel=Channel(lead.response_channel) if lead.response_channel else None,
            decision_id=strawberry.ID(lead.decision_id),
            detail=lead.detail,
        )


@strawberry.type(description="A campaign's leads counted: planned, sent (or answered), responded, accepted.")
class CampaignStats:
    planned: int
    sent: int
    responded: int
    accepted: int


@strawberry.type(description="An outbound campaign: an offer over channels to a segment or a customer list.")
class Campaign:
    id: strawberry.ID
    offer_id: strawberry.ID
    segment_id: strawberry.ID | None
    channels: list[LeadChannel]
    status: CampaignStatus
    created_at: datetime
    leads: list[Lead]
    stats: CampaignStats

    @classmethod
    def of(cls, c: CampaignView) -> Campaign:
        s = c.stats
        return cls(
            id=strawberry.ID(c.plan.id),
            offer_id=strawberry.ID(c.plan.offer_id),
            segment_id=strawberry.ID(c.plan.segment_id) if c.plan.segment_id else None,
            channels=list(c.plan.channels),
            status=c.status,
            created_at=c.plan.created_at,
            leads=[Lead.of(lead) for lead in c.leads],
            stats=CampaignStats(planned=s.planned, sent=s.sent, responded=s.responded, accepted=s.accepted),
        )


@strawberry.input
class LaunchCampaignInput:
    offer_id: strawberry.ID
    segment_id: strawberry.ID | None = None
    customer_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="At most 10,000.")
    channels: list[LeadChannel] = strawberry.field(
        default_factory=list, description="In order of preference: each customer gets one lead, by the "
        "first of these the offer and the customer's contact preferences allow."
    )
