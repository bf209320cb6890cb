"""The built-in LM: takes CM's leads (`lead.created`, through a flow), hands out the due ones within each
channel's capacity, records deliveries, responses and unsubscriptions. A customer's marketing consent
withheld for a channel (`customer.consent`, through a flow) stops their leads by it as an unsubscription
does, and the lead not sent says why. It erases and exports a customer's leads (PrivacyHandler).

Capacity (config `capacity`): email per hour (the last 60 minutes), print and call-center per UTC day. A
lead counts against it from the moment it is handed out; a temporary failure gives the slot back and the
lead waits `retry_seconds` (doubling per attempt) until `max_attempts`. A lead handed out by a process
that died (SENDING for longer than `stale_seconds`) is handed out again: delivery is at least once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field
from sqlalchemy import and_, bindparam, case, delete, func, or_, select, update

from hub.events import ConsentData
from hub.ports import (
    AdapterConfig,
    AdapterContext,
    CampaignCount,
    CloudEvent,
    ConsentPurpose,
    DeliveryOutcome,
    EventConsumer,
    Health,
    Lead,
    LeadChannel,
    LeadCreatedData,
    LeadManager,
    LeadStatus,
    MalformedEvent,
    Period,
    PermanentError,
    PrivacyHandler,
    PrivacySubject,
    PropositionResponse,
    Tx,
    dialect_insert,
    read,
    store_health,
    utcnow,
    within,
)

from .tables import MIGRATIONS, lm_leads, lm_optouts, metadata

LEAD_CREATED = "lead.created"
UNSUBSCRIBED = "unsubscribed from this channel"  # a lead not sent because of the customer's unsubscription
CUSTOMER_CONSENT = "customer.consent"  # marketing consent withheld for a channel: no more leads by it
# Names the claim lock on PostgreSQL: two hub processes never count one channel's capacity at once.
CLAIM_LOCK = 7301010
class Capacity(AdapterConfig):
    email_per_hour: int = Field(1000, ge=0)
    print_per_day: int = Field(5000, ge=0)
    callcenter_per_day: int = Field(50, ge=0)


class LMConfig(AdapterConfig):
    capacity: Capacity = Field(default_factory=lambda: Capacity.model_validate({}))
    max_attempts: int = Field(5, ge=1, le=50)
    retry_seconds: float = Field(60.0, gt=0)
    stale_seconds: float = Field(600.0, gt=0)


class BuiltinLM:
    """Entry point `builtin-lm`."""

    # And consume_batch (BatchEventConsumer), campaign_results (LeadReports): not roles' ports.
    ports: ClassVar[tuple[type, ...]] = (LeadManager, EventConsumer, PrivacyHandler)
    Config = LMConfig
    metadata = metadata
    migrations = MIGRATIONS

    def __init__(self, ctx: AdapterContext):
        self.system = ctx.system
        config = ctx.config
        assert isinstance(config, LMConfig)
        self.config = config
        self._engine = ctx.engine
        self._reader = ctx.reader
        self._clock = utcnow

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def check(self) -> Health:
        return await store_health(self._reader, "LM", lm_leads)

    # --- EventConsumer: CM's leads --------------------------------------------------------------

    async def consume(self, tx: Tx, event: CloudEvent) -> set[str]:
        return await self.consume_batch(tx, [event])

    async def consume_batch(self, tx: Tx, events: Sequence[CloudEvent]) -> set[str]:
        """The leads of a batch in one statement; one taken before (a redelivery) adds nothing. A
        marketing consent withheld for a channel (or every channel) stops the customer's leads by it,
        as an unsubscription does; given again, they may go again."""
        rows: dict[str, dict[str, Any]] = {}
        for event in events:
            if event.type == CUSTOMER_CONSENT:
                await self._consent(tx, event)
                continue
            if event.type != LEAD_CREATED:
                continue
            try:
                data = read(event, LeadCreatedData)
            except MalformedEvent as exc:
                raise PermanentError(str(exc)) from exc
            rows.setdefault(data.leadId, {
                "id": data.leadId, "code": data.code, "campaign_id": data.campaignId,
                "customer_id": data.customerId, "offer_id": data.offerId, "title": data.title,
                "channel": data.channel.value, "decision_id": data.decisionId,
                "status": LeadStatus.PLANNED.value, "attempts": 0, "created_at": data.at,
            })
        if rows:
            await tx.execute(
                dialect_insert(tx, lm_leads).on_conflict_do_nothing(index_elements=[lm_leads.c.id]),
                list(rows.values()),
            )
        return set()  # nothing of the customer view changed

    async def _consent(self, tx: Tx, event: CloudEvent) -> None:
        try:
            data = read(event, ConsentData)
        except MalformedEvent as exc:
            raise PermanentError(str(exc)) from exc
        if data.purpose is not ConsentPurpose.MARKETING:
            return
        channels = [data.channel.value] if data.channel else [c.value for c in LeadChannel]
        channels = [c for c in channels if c in LeadChannel.__members__]  # the outbound ones
        if not channels:
            return
        if data.granted:
            await tx.execute(delete(lm_optouts).where(
                lm_optouts.c.customer_id == data.customerId, lm_optouts.c.channel.in_(channels)))
            return
        await tx.execute(
            dialect_insert(tx, lm_optouts).on_conflict_do_nothing(
                index_elements=[lm_optouts.c.customer_id, lm_optouts.c.channel]
            ),
            [{"customer_id": data.customerId, "channel": c, "at": data.at,
              "reason": f"no marketing consent by {c}"}
             for c in channels],
        )

    # --- LeadManager ----------------------------------------------------------------------------

    def capacity(self, channel: LeadChannel, now: datetime) -> tuple[int, datetime]:
        """The channel's capacity and the start of the window it counts in."""
        c = self.config.capacity
        if channel is LeadChannel.EMAIL:
            return c.email_per_hour, now - timedelta(hours=1)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return (c.print_per_day if channel is LeadChannel.PRINT else c.callcenter_per_day), day

    async def claim(self, channel: LeadChannel, limit: int) -> Sequence[Lead]:
        now = self._clock()
        # Most rounds find nothing to do: a read says so without a write transaction (SQLite's one
        # writer is not taken every round by every process).
        async with self._reader.connect() as conn:
            waiting = (await conn.execute(
                select(lm_leads.c.id).where(
                    lm_leads.c.channel == channel.value,
                    lm_leads.c.status.in_([LeadStatus.PLANNED.value, LeadStatus.SENDING.value]),
                ).limit(1)
            )).first()
        if waiting is None:
            return []
        async with self._engine.begin() as tx:
            if tx.dialect.name == "postgresql":
                await tx.exec_driver_sql(f"SELECT pg_advisory_xact_lock({CLAIM_LOCK})")
            stale = now - timedelta(seconds=self.config.stale_seconds)
            await tx.execute(
                update(lm_leads)
                .where(lm_leads.c.channel == channel.value, lm_leads.c.status == LeadStatus.SENDING.value,
                       lm_leads.c.claimed_at < stale)
                .values(status=LeadStatus.PLANNED.value, claimed_at=None)
            )
            size, since = self.capacity(channel, now)
            used = (await tx.execute(
                select(func.count()).where(
                    lm_leads.c.channel == channel.value,
                    lm_leads.c.claimed_at >= since,
                    lm_leads.c.status.in_([LeadStatus.SENDING.value, LeadStatus.SENT.value,
                                           LeadStatus.RESPONDED.value]),
                )
            )).scalar_one()
            room = min(limit, size - int(used))
            if room <= 0:
                return []
            rows = (await tx.execute(
                select(lm_leads)
                .where(
                    lm_leads.c.channel == channel.value,
                    lm_leads.c.status == LeadStatus.PLANNED.value,
                    or_(lm_leads.c.retry_at.is_(None), lm_leads.c.retry_at <= now),
                )
                .order_by(lm_leads.c.created_at, lm_leads.c.id)
                .limit(room)
            )).all()
            if not rows:
                return []
            opted_out = {
                r.customer_id: r.reason or UNSUBSCRIBED
                for r in await tx.execute(
                    select(lm_optouts.c.customer_id, lm_optouts.c.reason).where(
                        lm_optouts.c.channel == channel.value,
                        lm_optouts.c.customer_id.in_({r.customer_id for r in rows}),
                    )
                )
            }
            taken = [r for r in rows if r.customer_id not in opted_out]
            for reason in set(opted_out.values()):
                skipped = [r.id for r in rows if opted_out.get(r.customer_id) == reason]
                await tx.execute(
                    update(lm_leads).where(lm_leads.c.id.in_(skipped))
                    .values(status=LeadStatus.FAILED.value, detail=reason)
                )
            if taken:
                await tx.execute(
                    update(lm_leads).where(lm_leads.c.id.in_([r.id for r in taken]))
                    .values(status=LeadStatus.SENDING.value, claimed_at=now)
                )
        return [_lead(r, status=LeadStatus.SENDING) for r in taken]

    async def settle(self, outcomes: Mapping[str, DeliveryOutcome]) -> None:
        if not outcomes:
            return
        now = self._clock()
        async with self._engine.begin() as tx:
            attempts = {
                r.id: int(r.attempts)
                for r in await tx.execute(
                    select(lm_leads.c.id, lm_leads.c.attempts).where(lm_leads.c.id.in_(list(outcomes)))
                )
            }
            sent: list[dict[str, Any]] = []
            for lead_id, outcome in outcomes.items():
                if lead_id not in attempts:
                    continue
                detail = (outcome.detail or "")[:500] or None
                if outcome.sent:  # the common case: one statement for all of them, below
                    sent.append({"b_id": lead_id, "b_detail": detail})
                    continue
                mine = and_(lm_leads.c.id == lead_id, lm_leads.c.status == LeadStatus.SENDING.value)
                if outcome.temporary and attempts[lead_id] + 1 < self.config.max_attempts:
                    wait = self.config.retry_seconds * 2 ** attempts[lead_id]
                    values: dict[str, Any] = {
                        "status": LeadStatus.PLANNED.value, "claimed_at": None, "detail": detail,
                        "attempts": attempts[lead_id] + 1, "retry_at": now + timedelta(seconds=wait),
                    }
                else:
                    values = {"status": LeadStatus.FAILED.value, "detail": detail,
                              "attempts": attempts[lead_id] + 1}
                await tx.execute(update(lm_leads).where(mine).values(**values))
            if sent:
                await tx.execute(
                    update(lm_leads)
                    .where(lm_leads.c.id == bindparam("b_id"), lm_leads.c.status == LeadStatus.SENDING.value)
                    .values(status=LeadStatus.SENT.value, sent_at=now, detail=bindparam("b_detail")),
                    sent,
                )

    async def leads(self, lead_ids: Sequence[str]) -> Mapping[str, Lead]:
        ids = list(dict.fromkeys(lead_ids))
        if not ids:
            return {}
        async with self._reader.connect() as conn:
            rows = (await conn.execute(select(lm_leads).where(lm_leads.c.id.in_(ids)))).all()
        return {r.id: _lead(r) for r in rows}

    async def by_code(self, code: str) -> Lead | None:
        async with self._reader.connect() as conn:
            row = (await conn.execute(select(lm_leads).where(lm_leads.c.code == code))).first()
        return _lead(row) if row else None

    async def of_campaigns(self, campaign_ids: Sequence[str]) -> Mapping[str, Sequence[Lead]]:
        ids = list(dict.fromkeys(campaign_ids))
        if not ids:
            return {}
        async with self._reader.connect() as conn:
            rows = (await conn.execute(
                select(lm_leads).where(lm_leads.c.campaign_id.in_(ids)).order_by(lm_leads.c.created_at,
                                                                                  lm_leads.c.id)
            )).all()
        out: dict[str, list[Lead]] = defaultdict(list)
        for r in rows:
            out[r.campaign_id].append(_lead(r))
        return out

    async def callbacks(self, limit: int) -> Sequence[Lead]:
        async with self._reader.connect() as conn:
            rows = (await conn.execute(
                select(lm_leads)
                .where(lm_leads.c.channel == LeadChannel.CALLCENTER.value,
                       lm_leads.c.status == LeadStatus.SENT.value)
                .order_by(lm_leads.c.sent_at, lm_leads.c.id)
                .limit(limit)
            )).all()
        return [_lead(r) for r in rows]

    async def respond(
        self, tx: Tx, code: str, channel: str, response: PropositionResponse, at: datetime
    ) -> tuple[Lead, bool] | None:
        row = (await tx.execute(select(lm_leads).where(lm_leads.c.code == code).with_for_update())).first()
        if row is None:
            return None
        if row.response == response.value:
            return _lead(row), False  # the same answer again: counted once
        await tx.execute(
            update(lm_leads).where(lm_leads.c.id == row.id).values(
                status=LeadStatus.RESPONDED.value, response=response.value, responded_at=at,
                response_channel=channel,
            )
        )
        row = (await tx.execute(select(lm_leads).where(lm_leads.c.id == row.id))).one()
        return _lead(row), True

    async def unsubscribe(self, tx: Tx, code: str) -> Lead | None:
        row = (await tx.execute(select(lm_leads).where(lm_leads.c.code == code))).first()
        if row is None:
            return None
        await tx.execute(
            dialect_insert(tx, lm_optouts)
            .values(customer_id=row.customer_id, channel=row.channel, at=self._clock())
            .on_conflict_do_nothing(index_elements=[lm_optouts.c.customer_id, lm_optouts.c.channel])
        )
        return _lead(row)

    # --- LeadReports ---------------------------------------------------------------------------------

    async def campaign_results(
        self, period: Period, channel: LeadChannel | None = None
    ) -> list[CampaignCount]:
        """Per campaign and channel, the leads made in the period: planned (all of them), sent (delivered,
        answered ones too), responded, accepted."""
        c = lm_leads.c

        def count(condition: Any) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        delivered = [LeadStatus.SENT.value, LeadStatus.RESPONDED.value]
        query = (
            select(
                c.campaign_id, c.channel, func.count().label("planned"),
                count(c.status.in_(delivered)).label("sent"),
                count(c.response.is_not(None)).label("responded"),
                count(c.response == PropositionResponse.ACCEPTED.value).label("accepted"),
            )
            .where(c.campaign_id.is_not(None))
            .group_by(c.campaign_id, c.channel)
            .order_by(c.campaign_id, c.channel)
        )
        query = within(query, c.created_at, period)
        if channel is not None:
            query = query.where(c.channel == channel.value)
        async with self._reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            CampaignCount(r.campaign_id, LeadChannel(r.channel), int(r.planned), int(r.sent),
                          int(r.responded), int(r.accepted))
            for r in rows
        ]

    # --- PrivacyHandler ----------------------------------------------------------------------------

    async def erase(self, tx: Tx, subject: PrivacySubject) -> str:
        """The customer's leads (a planned one is never sent) and unsubscriptions go; a campaign's
        counts no longer include them."""
        cid = subject.customer_id
        leads = await tx.execute(delete(lm_leads).where(lm_leads.c.customer_id == cid))
        await tx.execute(delete(lm_optouts).where(lm_optouts.c.customer_id == cid))
        return f"{leads.rowcount or 0} leads removed"

    async def export(self, tx: Tx, subject: PrivacySubject) -> dict[str, Any]:
        cid = subject.customer_id
        leads = (await tx.execute(
            select(lm_leads)
            .where(lm_leads.c.customer_id == cid)
            .order_by(lm_leads.c.created_at, lm_leads.c.id)
        )).all()
        optouts = (await tx.execute(
            select(lm_optouts).where(lm_optouts.c.customer_id == cid).order_by(lm_optouts.c.channel)
        )).all()
        return {
            "leads": [
                {
                    "id": r.id, "code": r.code, "campaignId": r.campaign_id, "offerId": r.offer_id,
                    "title": r.title, "channel": r.channel, "status": r.status, "createdAt": r.created_at,
                    "sentAt": r.sent_at, "respondedAt": r.responded_at, "response": r.response,
                    "responseChannel": r.response_channel,
                }
                for r in leads
            ],
            "unsubscribed": [{"channel": o.channel, "at": o.at} for o in optouts],
        }


def _lead(r: Any, status: LeadStatus | None = None) -> Lead:
    return Lead(
        id=r.id,
        code=r.code,
        campaign_id=r.campaign_id,
        customer_id=r.customer_id,
        offer_id=r.offer_id,
        title=r.title,
        channel=LeadChannel(r.channel),
        decision_id=r.decision_id,
        status=status or LeadStatus(r.status),
        created_at=r.created_at,
        sent_at=r.sent_at,
        responded_at=r.responded_at,
        response=PropositionResponse(r.response) if r.response else None,
        response_channel=r.response_channel,
        detail=r.detail,
    )
