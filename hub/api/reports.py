"""GraphQL for marketers, BI tools and operators: the report queries (funnel, campaignResults,
segmentSizes, requestCounts; scope reports:read), the dead-letter listing (operations:read), and the
operator mutations replayDeadLetters and runFlow (operations:write). Query and Mutation in hub.api.schema
take these fields by inheritance."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from hub.api.context import Context
from hub.api.errors import scrub
from hub.core import operations
from hub.core.reporting import Report, Reporting, period_of
from hub.model import Channel, LeadChannel, RequestKind, RequestStatus

I = Info[Context, None]  # noqa: E741
From = Annotated[
    datetime | None, strawberry.argument(name="from", description="Start of the period (inclusive).")
]
To = Annotated[datetime | None, strawberry.argument(description="End of the period (exclusive).")]
MAX_REASON = 300


@strawberry.type(description="One offer in one channel over the period: propositions shown in contacts "
                 "and the responses to them (CM's numbers).")
class FunnelRow:
    offer_id: strawberry.ID
    channel: Channel
    shown: int
    responded: int = strawberry.field(description="Accepted, rejected or later.")
    accepted: int
    rejected: int
    acceptance_rate: float | None = strawberry.field(
        description="accepted / shown; null when nothing was shown."
    )


@strawberry.type(description="One campaign over one outbound channel: its leads made in the period and "
                 "what became of them (LM's numbers; the name is the title of the campaign's offer, CM's).")
class CampaignResultRow:
    campaign_id: strawberry.ID
    name: str | None
    offer_id: strawberry.ID | None
    channel: LeadChannel
    planned: int
    sent: int
    responded: int
    accepted: int


@strawberry.type(description="How many customers a CM segment holds now.")
class SegmentSizeRow:
    segment_id: strawberry.ID
    name: str
    customers: int


@strawberry.type(description="Requests made in the period, by kind and current status (the CRM's numbers).")
class RequestCountRow:
    kind: RequestKind
    status: RequestStatus
    count: int


@strawberry.type(description="A message a destination could not take, with why.")
class DeadLetter:
    id: strawberry.ID
    queue: str
    reason: str
    attempts: int
    dead_at: datetime | None


@strawberry.type(description="A batch flow run by hand.")
class FlowRun:
    flow: str
    delivered: int = strawberry.field(description="Events delivered by this run.")


def reporting(info: I) -> Reporting:
    found = info.context.wiring.reporting
    assert found is not None, "the runtime wires reporting"
    return found


def rows_of(info: I, report: Report[Any]) -> None:
    """The errors of a partial report go beside the data, each naming its system."""
    path = info.path.as_list()
    for error in report.errors:
        info.context.partial.append(GraphQLError(error.message, path=path, extensions=error.extensions))


def dead_letter_rows(letters: list[operations.DeadLetterInfo]) -> list[DeadLetter]:
    return [
        DeadLetter(id=strawberry.ID(d.id), queue=d.queue, reason=scrub(d.reason, MAX_REASON),
                   attempts=d.attempts, dead_at=d.dead_at)
        for d in letters
    ]


@strawberry.type
class ReportQueries:
    @strawberry.field(description="The offer funnel per offer and channel over a period: shown -> responded "
                      "-> accepted (CM's numbers). For BI tools; scope reports:read.")
    async def funnel(
        self, info: I, from_: From = None, to: To = None, channel: Channel | None = None,
        offer_id: strawberry.ID | None = None,
    ) -> list[FunnelRow]:
        offer = None if offer_id is None else str(offer_id)
        report = await reporting(info).funnel(period_of(from_, to), channel, offer)
        rows_of(info, report)
        return [
            FunnelRow(offer_id=strawberry.ID(r.offer_id), channel=r.channel, shown=r.shown,
                      responded=r.responded, accepted=r.accepted, rejected=r.rejected,
                      acceptance_rate=r.acceptance_rate)
            for r in report.rows
        ]

    @strawberry.field(description="Campaign results per campaign and outbound channel over a period (leads "
                      "made in it): planned, sent, responded, accepted. Scope reports:read.")
    async def campaign_results(
        self, info: I, from_: From = None, to: To = None, channel: LeadChannel | None = None
    ) -> list[CampaignResultRow]:
        report = await reporting(info).campaign_results(period_of(from_, to), channel)
        rows_of(info, report)
        return [
            CampaignResultRow(
                campaign_id=strawberry.ID(r.campaign_id), name=r.name,
                offer_id=None if r.offer_id is None else strawberry.ID(r.offer_id), channel=r.channel,
                planned=r.planned, sent=r.sent, responded=r.responded, accepted=r.accepted,
            )
            for r in report.rows
        ]

    @strawberry.field(description="How many customers each CM segment holds now. Scope reports:read.")
    async def segment_sizes(self, info: I) -> list[SegmentSizeRow]:
        report = await reporting(info).segment_sizes()
        rows_of(info, report)
        return [SegmentSizeRow(segment_id=strawberry.ID(r.segment_id), name=r.name, customers=r.customers)
                for r in report.rows]

    @strawberry.field(description="Requests made in a period, by kind and current status (the CRM's "
                      "numbers). Scope reports:read.")
    async def request_counts(self, info: I, from_: From = None, to: To = None) -> list[RequestCountRow]:
        report = await reporting(info).request_counts(period_of(from_, to))
        rows_of(info, report)
        return [RequestCountRow(kind=r.kind, status=r.status, count=r.count) for r in report.rows]

    @strawberry.field(description="Dead letters with their queue, attempts and reason (all queues, or one); "
                      "for operators.")
    async def dead_letters(self, info: I, queue: str | None = None) -> list[DeadLetter]:
        return dead_letter_rows(await operations.dead_letters(info.context.hub.bus, queue))


@strawberry.type
class OperatorMutations:
    @strawberry.mutation(description="Send dead letters back to their queues: the ones named by id, or "
                         "all of them (all: true). Returns how many went back. Scope operations:write.")
    async def replay_dead_letters(
        self, info: I, ids: list[strawberry.ID] | None = None, all: bool = False
    ) -> int:
        return await operations.replay(info.context.hub.bus, [str(i) for i in ids] if ids else None, all)

    @strawberry.mutation(description="Deliver a batch flow's waiting events now, without waiting for its "
                         "time (counts as its run; a run in progress is not overlapped: FLOW_BUSY). Scope "
                         "operations:write.")
    async def run_flow(self, info: I, name: str) -> FlowRun:
        hub = info.context.hub
        count = await operations.run_flow(hub.scheduler, info.context.wiring.mapping.flows, name)
        return FlowRun(flow=name, delivered=count)

