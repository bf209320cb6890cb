"""Use cases of scenario step 5: outbound campaigns, their delivery, and the responses to them.

- `Campaigns.launch`: CM plans one lead per eligible customer (port CampaignPlanner); the hub writes a
  `lead.created` event per lead in the same transaction, and the flow `leads-to-lm` hands them to LM.
- `LeadDispatcher`: in every hub process, each `outbound_interval_seconds`, asks LM for the due leads of
  each outbound channel within its capacity (LM's claim is exclusive across processes), reads each
  customer's current name, email and address from the CRM (at send time, not at planning time), hands
  the batch to the channel and tells LM what became of each lead.
- `Responses`: a response through any channel (the email's link, the website, the call center, the
  shop) is correlated with its lead by code and recorded by LM; a new one is a `lead.response` event
  (same transaction) that the flow `lead-responses-to-cm` takes to CM, which learns from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.consents import ConsentService
from hub.core.decisions import Decisions
from hub.core.errors import BadInput, NotFound, UnknownOffer
from hub.events import (
    LEAD_CREATED,
    LEAD_RESPONSE,
    CloudEvent,
    LeadCreatedData,
    LeadResponseData,
    make,
    utcnow,
)
from hub.messaging.outbox import Outbox
from hub.model import (
    CampaignPlan,
    CampaignStatus,
    Channel,
    CustomerView,
    Delivery,
    DeliveryOutcome,
    Lead,
    LeadChannel,
    LeadStatus,
    PropositionResponse,
    Recipient,
)
from hub.model.privacy import Consent, ConsentPurpose
from hub.observability import metrics
from hub.ports import CampaignPlanner, LeadManager, OutboundChannel

log = logging.getLogger(__name__)

MAX_CUSTOMERS = 10_000  # customerIds per launch; a segment has no such limit
OUTBOX_CHUNK = 500  # lead.created events written per statement
CODE_MAX = 40


class UnknownLead(NotFound):
    code = "UNKNOWN_LEAD"


class UnknownCampaign(NotFound):
    code = "UNKNOWN_CAMPAIGN"


@dataclass(frozen=True, slots=True)
class CampaignStats:
    planned: int
    sent: int
    responded: int
    accepted: int


@dataclass(frozen=True, slots=True)
class Campaign:
    plan: CampaignPlan
    leads: tuple[Lead, ...]

    @property
    def status(self) -> CampaignStatus:
        waiting = {LeadStatus.PLANNED, LeadStatus.SENDING}
        pending = any(lead.status in waiting for lead in self.leads)
        return CampaignStatus.PLANNED if pending else CampaignStatus.DONE

    @property
    def stats(self) -> CampaignStats:
        delivered = {LeadStatus.SENT, LeadStatus.RESPONDED}
        return CampaignStats(
            planned=len(self.leads),
            sent=sum(1 for lead in self.leads if lead.status in delivered),
            responded=sum(1 for lead in self.leads if lead.response is not None),
            accepted=sum(1 for lead in self.leads if lead.response is PropositionResponse.ACCEPTED),
        )


class Campaigns:
    def __init__(
        self,
        engine: AsyncEngine,
        planner: CampaignPlanner,
        lm: LeadManager,
        decisions: Decisions,
        outbox: Outbox,
        source: str,
    ):
        self._engine = engine
        self._planner = planner
        self._lm = lm
        self._decisions = decisions
        self._outbox = outbox
        self._source = source

    async def launch(
        self,
        offer_id: str,
        segment_id: str | None,
        customer_ids: Sequence[str] | None,
        channels: Sequence[LeadChannel],
        progress: Callable[[int, int | None], None] | None = None,
    ) -> Campaign:
        """Plan the campaign's leads and hand them to LM (through the outbox), in one transaction.
        `progress` is told how many planned leads are handed over so far, of how many."""
        if not channels:
            raise BadInput("give at least one outbound channel", field="channels")
        if segment_id is None and not customer_ids:
            raise BadInput("give a segmentId or customerIds", field="segmentId")
        if customer_ids is not None and len(customer_ids) > MAX_CUSTOMERS:
            raise BadInput(f"at most {MAX_CUSTOMERS} customerIds per launch", field="customerIds")
        if offer_id not in {o.id for o in await self._decisions.offers()}:
            raise UnknownOffer(f"no offer {offer_id[:80]!r} in CM's catalog", offerId=offer_id[:80])
        if segment_id is not None and segment_id not in {s.id for s in await self._planner.segments()}:
            raise BadInput(f"no segment {segment_id[:80]!r} in CM's catalog", field="segmentId")
        plan = CampaignPlan(
            id=f"cmp_{uuid.uuid4().hex[:20]}",
            offer_id=offer_id,
            channels=tuple(dict.fromkeys(channels)),
            segment_id=segment_id,
            customer_ids=tuple(dict.fromkeys(str(c)[:40] for c in customer_ids or ())),
            created_at=utcnow(),
        )
        async with self._engine.begin() as tx:
            leads = list(await self._planner.plan(tx, plan))
            if progress is not None:
                progress(0, len(leads))
            for at in range(0, len(leads), OUTBOX_CHUNK):  # one statement per chunk: memory stays flat
                await self._outbox.add(tx, [self._created(lead) for lead in leads[at : at + OUTBOX_CHUNK]])
                if progress is not None:
                    progress(min(at + OUTBOX_CHUNK, len(leads)), len(leads))
        log.info("campaign %s: %d leads planned for offer %s", plan.id, len(leads), offer_id)
        metrics.leads_planned(leads)
        return Campaign(plan, tuple(leads))

    async def get(self, campaign_ids: Sequence[str]) -> dict[str, Campaign]:
        plans = await self._planner.campaigns([c for c in campaign_ids if 0 < len(c) <= 40])
        leads = await self._lm.of_campaigns(list(plans))
        return {cid: Campaign(plan, tuple(leads.get(cid, ()))) for cid, plan in plans.items()}

    def _created(self, lead: Lead) -> CloudEvent:
        return make(
            LEAD_CREATED,
            LeadCreatedData(
                leadId=lead.id,
                code=lead.code,
                campaignId=lead.campaign_id,
                customerId=lead.customer_id,
                offerId=lead.offer_id,
                title=lead.title,
                channel=lead.channel,
                decisionId=lead.decision_id,
                at=lead.created_at or utcnow(),
            ),
            source=self._source,
            subject=lead.customer_id,
            correlationid=lead.id,
        )


class Responses:
    def __init__(
        self,
        engine: AsyncEngine,
        lm: LeadManager,
        outbox: Outbox,
        source: str,
        consents: ConsentService | None = None,
    ):
        self._engine = engine
        self._lm = lm
        self._outbox = outbox
        self._source = source
        self._consents = consents  # the unsubscribe link withdraws marketing consent, when they are kept

    async def record(self, code: str, channel: Channel, response: PropositionResponse) -> Lead:
        code = _code(code)
        async with self._engine.begin() as tx:
            found = await self._lm.respond(tx, code, channel.value, response, utcnow())
            if found is None:
                raise UnknownLead(f"no lead with code {code!r}", leadCode=code)
            lead, new = found
            if new:
                await self._outbox.add(tx, [self._response(lead, channel, response)])
        if new:
            metrics.leads(lead.channel, "RESPONDED")
        return lead

    async def unsubscribe(self, code: str) -> Lead:
        """LM sends the customer no more leads over the lead's channel, and (with a consent registry)
        the customer's marketing consent for that channel is withdrawn, in the same transaction."""
        code = _code(code)
        changed = False
        async with self._engine.begin() as tx:
            lead = await self._lm.unsubscribe(tx, code)
            channel = CONSENT_CHANNELS.get(lead.channel) if lead is not None else None
            if lead is not None and channel is not None and self._consents is not None:
                withdrawn = Consent(ConsentPurpose.MARKETING, channel, False, utcnow(), "unsubscribe")
                changed = await self._consents.record(tx, lead.customer_id, withdrawn)
        if lead is None:
            raise UnknownLead(f"no lead with code {code!r}", leadCode=code)
        if changed and self._consents is not None:
            self._consents.committed(lead.customer_id)
        return lead

    def _response(self, lead: Lead, channel: Channel, response: PropositionResponse) -> CloudEvent:
        return make(
            LEAD_RESPONSE,
            LeadResponseData(
                leadId=lead.id,
                customerId=lead.customer_id,
                offerId=lead.offer_id,
                decisionId=lead.decision_id,
                channel=channel,
                response=response,
                at=lead.responded_at or utcnow(),
            ),
            source=self._source,
            subject=lead.customer_id,
            correlationid=lead.id,
        )


# The front-end channel whose marketing consent an outbound channel's unsubscribe withdraws (a letter
# has none of its own: LM alone stops sending letters).
CONSENT_CHANNELS = {LeadChannel.EMAIL: Channel.EMAIL, LeadChannel.CALLCENTER: Channel.CALLCENTER}


def _code(code: str) -> str:
    cleaned = code.strip().upper()
    if not cleaned or len(cleaned) > CODE_MAX:
        raise UnknownLead(f"no lead with code {code[:CODE_MAX]!r}", leadCode=code[:CODE_MAX])
    return cleaned


Recipients = Callable[[Sequence[str]], Awaitable[Mapping[str, CustomerView]]]


@dataclass(frozen=True, slots=True)
class Outbound:
    """What a dispatch round needs from the current mapping."""

    lm: LeadManager
    channels: Mapping[str, OutboundChannel]  # system name -> its channel
    recipients: Recipients  # the CRM's current view of customers, past every cache


class LeadDispatcher:
    """Hands due leads to their channels, round after round, in every hub process."""

    def __init__(self, outbound: Callable[[], Outbound | None], public_url: str, interval: float, batch: int):
        self._outbound = outbound  # read each round: a mapping reload may change it
        self._public_url = public_url.rstrip("/")
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="lead-dispatcher")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace: float = 10.0) -> None:
        """Let the round in progress finish (a batch half sent and not settled would be sent again),
        then stop; cancelled only past `grace`."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.run_once()
            except Exception:  # a channel or store hiccup must not stop outbound delivery
                log.exception("lead dispatcher round failed; next round in %.1fs", self._interval)
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()

    async def run_once(self) -> dict[str, int]:
        """One round over every outbound channel; per system, how many leads it was handed."""
        handed: dict[str, int] = {}
        outbound = self._outbound()
        if outbound is None:
            return handed
        for system, channel in outbound.channels.items():
            total = 0
            while True:  # until the channel's capacity or its due leads run out
                leads = await outbound.lm.claim(channel.channel, self._batch)
                if not leads:
                    break
                await self._deliver(outbound, system, channel, leads)
                total += len(leads)
                if len(leads) < self._batch:
                    break
            handed[system] = total
        return handed

    async def _deliver(
        self, outbound: Outbound, system: str, channel: OutboundChannel, leads: Sequence[Lead]
    ) -> None:
        outcomes: dict[str, DeliveryOutcome] = {}
        try:
            views = await outbound.recipients([lead.customer_id for lead in leads])
        except Exception as exc:  # the CRM is away: try these again later
            why = type(exc).__name__
            log.warning("CRM unavailable for %d %s leads (%s)", len(leads), channel.channel, why)
            later = DeliveryOutcome(False, f"CRM unavailable ({why})", temporary=True)
            await outbound.lm.settle({lead.id: later for lead in leads})
            return
        batch = [
            Delivery(
                lead,
                _recipient(views.get(lead.customer_id)),
                f"{self._public_url}/r/{lead.code}",
                f"{self._public_url}/u/{lead.code}",
            )
            for lead in leads
        ]
        try:
            results = list(await channel.deliver(batch))
            if len(results) != len(batch):
                raise ValueError(f"{len(results)} outcomes for {len(batch)} deliveries")
        except Exception as exc:  # nothing known about this batch: every lead is tried again
            why = type(exc).__name__
            log.warning("outbound channel %s failed a batch of %d (%s)", system, len(batch), why)
            results = [DeliveryOutcome(False, f"{type(exc).__name__}", True) for _ in batch]
        for delivery, outcome in zip(batch, results, strict=True):
            outcomes[delivery.lead.id] = outcome
        await outbound.lm.settle(outcomes)
        metrics.leads_settled(channel.channel, results)


def _recipient(view: CustomerView | None) -> Recipient:
    if view is None:
        return Recipient(None, None, None)
    address = view.attributes.get("address")
    return Recipient(
        name=view.name,
        email=view.emails[0] if view.emails else None,
        address=str(address) if address else None,
    )
