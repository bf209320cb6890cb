"""The GraphQL schema: queries, mutations and the NBA subscription. Resolvers call the core only."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from hub.api import convert, federation, guard, privacy
from hub.api.audit import audit_mutations
from hub.api.context import Context, check_limit
from hub.api.errors import public_detail
from hub.api.execution import Executor
from hub.api.extensions import AfterExecution, answer_policy, limit_rules, partial_data
from hub.api.inputs import InputLimits
from hub.api.metrics import Observe
from hub.api.prepared import PreparedDocuments
from hub.api.reports import OperatorMutations, ReportQueries
from hub.api.types import (
    AuditEntry,
    Campaign,
    Channel,
    Contact,
    ContactEventInput,
    Customer,
    CustomerRequest,
    Flow,
    LaunchCampaignInput,
    Lead,
    NextBestAction,
    Offer,
    Operations,
    QueueStatus,
    RecordContactEventsPayload,
    StartContactInput,
    StartContactPayload,
    SubmitRequestInput,
    SystemKeyInput,
)
from hub.config import Settings
from hub.core.errors import BadInput, NotFound, SystemUnavailable, UnknownCustomer
from hub.core.events import EventInput
from hub.core.flows import flow_statuses
from hub.core.identity import keys_from, normalize_token
from hub.messaging.bus.base import BusError
from hub.model import GOLDEN_ID, DecisionRequest, Key, PropositionResponse, RequestStatus
from hub.model.privacy import ConsentPurpose, PrivacyKind
from hub.security.scopes import IDENTITY_MERGE

I = Info[Context, None]  # noqa: E741
MAX_CUSTOMERS = 100
# Root fields whose answers may be kept whole (hub.api.answers) while their reads stay current. Default
# deny: a root field not listed here is answered live every time.
CACHEABLE_ROOTS = frozenset({"customer", "customers", "customerByKey", "__typename"})
# Who a status set through the API came from, in the request's history: the caller's key name or
# token subject; this when the hub runs open (HUB_AUTH=off).
BACK_OFFICE_AGENT = "backoffice"
# Key kinds as the API names them (StartContactPayload.unlinkedKeys).
KEY_NAMES = {"email": "email", "phone": "phone", "customer": "customerId", "cookie": "cookieId"}
MAX_CALLBACKS = 200
MAX_AUDIT = 1000


async def _customer(info: I, customer_id: str) -> Customer | None:
    view = await info.context.customer(customer_id, info.path.as_list())
    return Customer.of(view) if view else None


async def _known_golden_ids(wiring: Any, keys: list[Key]) -> None:
    """A golden id given to identify a visitor names a customer that exists: never a new one."""
    for key in keys:
        if key.kind == GOLDEN_ID and await wiring.contacts.find([key]) is None:
            raise UnknownCustomer(f"no customer with id {key.value!r}", field="identification.customerId")


@strawberry.type
class Query(ReportQueries):  # the report queries and deadLetters: hub.api.reports
    @strawberry.field(description="A customer by golden id; null when unknown.")
    async def customer(self, info: I, id: strawberry.ID) -> Customer | None:
        return await _customer(info, str(id))

    @strawberry.field(
        description=f"Customers by golden id, in the order given (null where unknown); at most "
        f"{MAX_CUSTOMERS} per call. All of them are read in one batched call per system."
    )
    async def customers(self, info: I, ids: list[strawberry.ID]) -> list[Customer | None]:
        if len(ids) > MAX_CUSTOMERS:
            raise BadInput(f"at most {MAX_CUSTOMERS} ids per call, got {len(ids)}", field="ids")
        path = info.path.as_list()
        views = await asyncio.gather(*(info.context.customer(str(i), [*path, n]) for n, i in enumerate(ids)))
        return [Customer.of(v) if v else None for v in views]

    @strawberry.field(description="A customer by any identifying key; null when unknown.")
    async def customer_by_key(
        self,
        info: I,
        email: str | None = None,
        phone: str | None = None,
        cookie_id: str | None = None,
        customer_number: str | None = None,
        system_key: Annotated[
            SystemKeyInput | None,
            strawberry.argument(description="A system's own id for the customer, e.g. the CRM's CRM-000123."),
        ] = None,
    ) -> Customer | None:
        wiring = info.context.wiring
        keys = keys_from(
            email=email,
            phone=phone,
            cookie_id=cookie_id,
            customer_id=customer_number,
            region=wiring.phone_region,
        )
        if system_key is not None:
            if system_key.system not in wiring.mapping.systems:
                raise BadInput(f"no system named {system_key.system[:60]!r}", field="systemKey.system")
            keys.append(Key(system_key.system, normalize_token(system_key.id, "systemKey.id")))
        if not keys:
            raise BadInput("give at least one key: email, phone, cookieId, customerNumber or systemKey")
        customer_id = await wiring.contacts.find(keys)
        return await _customer(info, customer_id) if customer_id else None

    @strawberry.field(description="A customer request by id, with its status history; null when unknown.")
    async def request(self, info: I, id: strawberry.ID) -> CustomerRequest | None:
        found = await info.context.request_service().get([str(id)])
        request = found.get(str(id))
        return CustomerRequest.of(request) if request else None

    @strawberry.field(description="An outbound lead by id; null when unknown.")
    async def lead(self, info: I, id: strawberry.ID) -> Lead | None:
        if not 0 < len(str(id)) <= 40:
            return None
        found = await info.context.lead_manager().leads([str(id)])
        lead = found.get(str(id))
        return Lead.of(lead) if lead else None

    @strawberry.field(description="An outbound campaign with its leads and their counts; null when unknown.")
    async def campaign(self, info: I, id: strawberry.ID) -> Campaign | None:
        found = await info.context.campaigns().get([str(id)])
        campaign = found.get(str(id))
        return Campaign.of(campaign) if campaign else None

    @strawberry.field(
        description="The call center's work list: call-center leads sent and not answered yet, oldest first "
        f"(at most {MAX_CALLBACKS}); an agent records the outcome with recordLeadResponse."
    )
    async def callbacks(self, info: I, limit: int = 20) -> list[Lead]:
        if not 1 <= limit <= MAX_CALLBACKS:
            raise BadInput(f"limit must be between 1 and {MAX_CALLBACKS}", field="limit")
        return [Lead.of(lead) for lead in await info.context.lead_manager().callbacks(limit)]

    @strawberry.field(description="CM's offer catalog.")
    async def offers(self, info: I) -> list[Offer]:
        return [Offer.of(o) for o in await info.context.wiring.decisions.offers()]

    @strawberry.field(description="Queues, dead letters and outbox backlog, for operators.")
    async def operations(self, info: I) -> Operations:
        hub = info.context.hub
        # The broker being away is exactly when operators look: report it, keep the store's numbers.
        try:
            stats, bus_error = await hub.bus.stats(), None
        except BusError as exc:
            stats, bus_error = [], public_detail(f"{type(exc).__name__}: {exc}")
        return Operations(
            queues=[QueueStatus(queue=q.queue, depth=q.depth, dead_letters=q.dead_letters) for q in stats],
            outbox_backlog=await hub.outbox.backlog(hub.engine),
            relay_error=public_detail(hub.relay.last_error),  # no SQL or parameters
            bus_error=bus_error,
        )

    @strawberry.field(
        description="The information flows of the mapping: source, destination, mode and schedule, what "
        "waits for each destination, and when batch flows last ran and run next; for operators."
    )
    async def flows(self, info: I) -> list[Flow]:
        hub = info.context.hub
        statuses = await flow_statuses(info.context.wiring.mapping.flows, hub.scheduler, hub.bus)
        return [Flow.of(s) for s in statuses]


    @strawberry.field(
        description=f"The audit log, newest first (at most {MAX_AUDIT}): every mutation and operator action, "
        "by whom and with what outcome; filtered by action or by who."
    )
    async def audit_log(
        self, info: I, limit: int = 50, action: str | None = None, who: str | None = None
    ) -> list[AuditEntry]:
        if not 1 <= limit <= MAX_AUDIT:
            raise BadInput(f"limit must be between 1 and {MAX_AUDIT}", field="limit")
        found = await info.context.hub.security.audit.recent(limit, action, who)
        return [AuditEntry(at=e.at, who=e.who, via=e.via, action=e.action, target=e.target, outcome=e.outcome)
                for e in found]

    @strawberry.field(description="A privacy request (erasure or export) with each system's receipt; null "
                      "when unknown.")
    async def privacy_request(self, info: I, id: strawberry.ID) -> privacy.PrivacyRequest | None:
        return await privacy.get(info, str(id))


@strawberry.type
class Mutation(OperatorMutations):  # replayDeadLetters, runFlow: hub.api.reports
    @strawberry.mutation(description="Identify the visitor, register the contact, return view and NBAs.")
    async def start_contact(self, info: I, input: StartContactInput) -> StartContactPayload:
        wiring = info.context.wiring
        ident = input.identification
        keys = keys_from(
            email=ident.email,
            phone=ident.phone,
            cookie_id=ident.cookie_id,
            customer_id=ident.customer_number,
            id_or_number=str(ident.customer_id) if ident.customer_id is not None else None,
            region=wiring.phone_region,
        )
        await _known_golden_ids(wiring, keys)
        context = info.context
        context.act_as(input.channel)
        started = await wiring.contacts.start(
            input.channel,
            keys,
            input.name,
            may_merge=context.principal.allows(IDENTITY_MERGE),
            blocked=context.hub.settings.blocked_values,
        )
        return StartContactPayload(
            contact=Contact.of(started.contact),
            customer_id=started.customer_id,
            channel=input.channel,
            created=started.created,
            unlinked_keys=[KEY_NAMES.get(str(k.kind), str(k.kind)) for k in started.unlinked],
        )

    @strawberry.mutation(description="Report what happened during a contact; the NBAs returned reflect it.")
    async def record_contact_events(
        self, info: I, contact_id: strawberry.ID, events: list[ContactEventInput]
    ) -> RecordContactEventsPayload:
        items = [
            EventInput(
                type=e.type,
                offer_id=str(e.offer_id) if e.offer_id is not None else None,
                response=e.response,
                topic=e.topic,
                occurred_at=e.occurred_at,
                decision_id=str(e.decision_id) if e.decision_id is not None else None,
            )
            for e in events
        ]
        await info.context.act_on_contact(str(contact_id))
        service = info.context.wiring.events
        recorded = await service.record(str(contact_id), items, decide=False)  # NBAs only when selected
        return RecordContactEventsPayload(
            accepted=len(recorded.events),
            event_ids=[strawberry.ID(e.id) for e in recorded.events],
            decide=functools.partial(service.decide, recorded),
        )

    @strawberry.mutation(description="End a contact, with an optional outcome.")
    async def end_contact(self, info: I, contact_id: strawberry.ID, outcome: str | None = None) -> Contact:
        await info.context.act_on_contact(str(contact_id))
        return Contact.of(await info.context.wiring.contacts.end(str(contact_id), outcome))

    @strawberry.mutation(
        description="CM plans one lead per eligible customer of the segment or list (the offer's rules and "
        "the customers' contact preferences respected) and hands them to LM, which sends them within each "
        "channel's capacity."
    )
    async def launch_campaign(self, info: I, input: LaunchCampaignInput) -> Campaign:
        ids = [str(c) for c in input.customer_ids] if input.customer_ids is not None else None
        segment = str(input.segment_id) if input.segment_id is not None else None
        campaign = await info.context.campaigns().launch(str(input.offer_id), segment, ids, input.channels)
        return Campaign.of(campaign)

    @strawberry.mutation(
        description="A customer's response to a lead, by its code, through any channel: recorded once "
        "(the same response again changes nothing) and passed to CM."
    )
    async def record_lead_response(
        self, info: I, code: str, channel: Channel, response: PropositionResponse
    ) -> Lead:
        info.context.act_as(channel)
        return Lead.of(await info.context.responses().record(code, channel, response))

    @strawberry.mutation(
        description="Take in a customer request during an open contact: stored by the CRM with status OPEN "
        "and handed to the back office (which may settle it at once)."
    )
    async def submit_request(self, info: I, input: SubmitRequestInput) -> CustomerRequest:
        service = info.context.request_service()
        await info.context.act_on_contact(str(input.contact_id))
        offer_id = str(input.offer_id) if input.offer_id is not None else None
        request = await service.submit(
            str(input.contact_id), input.kind, input.subject, input.details, offer_id
        )
        return CustomerRequest.of(request)

    @strawberry.mutation(
        description="The back office moves a request on; a move RequestStatus does not allow is refused "
        "(INVALID_TRANSITION) and changes nothing."
    )
    async def update_request_status(
        self, info: I, id: strawberry.ID, status: RequestStatus, note: str | None = None
    ) -> CustomerRequest:
        service = info.context.request_service()
        principal = info.context.principal
        agent = BACK_OFFICE_AGENT if principal.kind == "open" else principal.name
        return CustomerRequest.of(await service.update_status(str(id), status, note, agent))

    @strawberry.mutation(
        description="Erase the customer everywhere (GDPR art. 17): the hub forgets the customer's keys at "
        "once (the same email later is a new customer; events still queued for this customer are dropped) "
        "and asks every system, each answering with a receipt; failures are retried. Erasing an erased "
        "customer answers the first erasure."
    )
    async def erase_customer(self, info: I, id: strawberry.ID) -> privacy.PrivacyRequest:
        return await privacy.request(info, PrivacyKind.ERASURE, str(id))

    @strawberry.mutation(
        description="Export the customer's data (GDPR art. 15, 20): every system is asked for its part; "
        "`download` is the whole as one JSON document once every system has answered."
    )
    async def export_customer(self, info: I, id: strawberry.ID) -> privacy.PrivacyRequest:
        return await privacy.request(info, PrivacyKind.EXPORT, str(id))

    @strawberry.mutation(
        description="Give or withdraw the customer's consent for a purpose, in one channel or (no channel) "
        "in every channel; recorded by the consent registry (the CRM) and told to CM and LM, which offer "
        "and send by it. The newest statement covering a channel decides."
    )
    async def set_consent(
        self,
        info: I,
        customer_id: strawberry.ID,
        purpose: ConsentPurpose,
        channel: Channel | None,
        granted: bool,
    ) -> Customer:
        await privacy.set_consent(info, str(customer_id), purpose, channel, granted)
        customer = await _customer(info, str(customer_id))
        if customer is None:
            raise NotFound(f"no customer with id {str(customer_id)[:40]!r}", customerId=str(customer_id)[:40])
        return customer


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The customer's NBAs now, and again every time CM re-ranks them.")
    async def next_best_actions(
        self, info: I, customer_id: strawberry.ID, channel: Channel | None = None, limit: int = 3
    ) -> AsyncGenerator[list[NextBestAction], None]:
        check_limit(limit)
        context = info.context
        if channel is not None:
            context.act_as(channel)
        hub = context.hub
        cid = str(customer_id)
        if not await hub.views.existing([cid]):
            raise NotFound(f"no customer with id {cid!r}", customerId=cid)
        async with context.subscription_slot(), hub.feed.listen(cid) as changed:
            while True:
                # Each push asks the wiring current now: a subscription outlives mapping reloads.
                try:
                    nbas = await hub.decisions.decide_one(DecisionRequest(cid, channel, limit))
                except SystemUnavailable:
                    nbas = None  # CM is away: the subscriber keeps the last list until it answers again
                if nbas is not None:
                    yield [NextBestAction.of(n) for n in nbas]
                await changed.get()


# The scope each protected field needs, in the SDL (hub.api.guard; the table is hub.security.scopes).
guard.declare([Query, Mutation, Subscription, Customer])
# The Federation subgraph's root fields (_service, _entities; hub.api.federation), under the same rules.
FederatedQuery = federation.query(Query)
guard.declare([FederatedQuery])


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    inputs = InputLimits(
        max_input_list=settings.max_input_list, max_events_per_call=settings.max_events_per_call
    )
    # Parsed, validated (with the limit rules, made once per schema) and planned once per query text.
    documents = PreparedDocuments(limit_rules(settings), inputs)
    # The answer policy and the audit read the result as executed, before the errors of partial data
    # join it: a mutation that succeeded with a partial view is audited as ok.
    after = (answer_policy(CACHEABLE_ROOTS), audit_mutations, partial_data)
    built = federation.FederatedSchema(
        query=FederatedQuery,
        mutation=Mutation,
        subscription=Subscription,
        execution_context_class=Executor,  # frees an operation's objects when it ends (hub.api.execution)
        extensions=[  # classes and factories: strawberry makes them fresh per request
            Observe,  # first: times and traces the whole operation (hub.api.metrics)
            lambda: AfterExecution(steps=after),
            documents.extension,
        ],
    )
    guard.enforce(built._schema)
    convert.install(t.definition for t in built.schema_converter.type_map.values())
    return built


schema = build_schema()
