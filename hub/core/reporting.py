"""Reports for marketers and BI tools: the offer funnel, campaign results, segment sizes, requests by
status, over a period. The hub adds nothing of its own: each number comes from the system that owns the
facts (DESIGN.md, "Who owns what"), through its optional report port (hub.ports):

- CM (decision_engine): OfferReports.funnel, OfferReports.segment_sizes; a campaign's offer and name
  (CampaignPlanner.campaigns, DecisionEngine.offers);
- LM (lead_manager): LeadReports.campaign_results;
- the CRM (request_registry): RequestReports.request_counts.

A system without the port, or that raises NotSupported, leaves its rows out and the report says so with
an error naming the system (NOT_SUPPORTED); one that fails, SYSTEM_UNAVAILABLE; a role nobody plays,
NOT_CONFIGURED: the hub's partial-data pattern, as for the customer view."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from hub.core.calls import call
from hub.core.errors import BadInput, HubError, NotConfigured, SystemUnavailable
from hub.model import Channel, LeadChannel
from hub.model.report import CampaignCount, FunnelCount, Period, RequestCount, SegmentSize
from hub.ports import LeadReports, NotSupported, OfferReports, RequestReports

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

# Reports read whole tables: given longer than a call on the request path (a system's timeout_seconds).
REPORT_TIMEOUT = 30.0
MAX_OFFER_ID = 80


class ReportNotSupported(HubError):
    """The system that owns these numbers cannot report them."""

    code = "NOT_SUPPORTED"


@dataclass(frozen=True, slots=True)
class Owner:
    """The system that owns a kind of fact: its name and adapter (None: no system plays the role)."""

    role: str
    system: str | None
    adapter: Any


@dataclass(slots=True)
class Report(Generic[T]):
    rows: list[T]
    errors: list[HubError] = field(default_factory=list)  # each names its system (extensions.system)


@dataclass(frozen=True, slots=True)
class CampaignResult:
    campaign_id: str
    name: str | None  # the title of the campaign's offer (CM's); None when CM could not say
    offer_id: str | None
    channel: LeadChannel
    planned: int
    sent: int
    responded: int
    accepted: int


def period_of(start: datetime | None, end: datetime | None) -> Period:
    """[start, end); a time without a zone is UTC. An end before the start is the caller's mistake."""
    start = start.replace(tzinfo=UTC) if start is not None and start.tzinfo is None else start
    end = end.replace(tzinfo=UTC) if end is not None and end.tzinfo is None else end
    if start is not None and end is not None and end < start:
        raise BadInput("`to` is before `from`", field="to")
    return Period(start, end)


class Reporting:
    def __init__(self, offers: Owner, leads: Owner, requests: Owner):
        self._offers = offers  # CM
        self._leads = leads  # LM
        self._requests = requests  # CRM

    async def funnel(
        self, period: Period, channel: Channel | None = None, offer_id: str | None = None
    ) -> Report[FunnelCount]:
        if offer_id is not None and not 0 < len(offer_id) <= MAX_OFFER_ID:
            raise BadInput(f"offerId must be 1-{MAX_OFFER_ID} characters", field="offerId")
        return await _ask(self._offers, OfferReports, "the offer funnel",
                          lambda cm: cm.funnel(period, channel, offer_id))

    async def segment_sizes(self) -> Report[SegmentSize]:
        return await _ask(self._offers, OfferReports, "segment sizes", lambda cm: cm.segment_sizes())

    async def request_counts(self, period: Period) -> Report[RequestCount]:
        return await _ask(self._requests, RequestReports, "request counts",
                          lambda crm: crm.request_counts(period))

    async def campaign_results(
        self, period: Period, channel: LeadChannel | None = None
    ) -> Report[CampaignResult]:
        counts: Report[CampaignCount] = await _ask(
            self._leads, LeadReports, "campaign results", lambda lm: lm.campaign_results(period, channel)
        )
        names, errors = await self._campaign_names(sorted({c.campaign_id for c in counts.rows}))
        rows = [
            CampaignResult(c.campaign_id, *names.get(c.campaign_id, (None, None)), c.channel, c.planned,
                           c.sent, c.responded, c.accepted)
            for c in counts.rows
        ]
        return Report(rows, [*counts.errors, *errors])

    async def _campaign_names(
        self, campaign_ids: list[str]
    ) -> tuple[dict[str, tuple[str | None, str | None]], list[HubError]]:
        """Campaign id -> (name, offer id), from CM, which owns campaigns and offers."""
        cm = self._offers
        if not campaign_ids or cm.adapter is None or cm.system is None:
            return {}, []
        try:
            plans = await call(cm.system, REPORT_TIMEOUT, "campaigns", cm.adapter.campaigns(campaign_ids))
            offers = await call(cm.system, REPORT_TIMEOUT, "offers", cm.adapter.offers())
        except SystemUnavailable as exc:
            return {}, [_partial(exc, "campaign names are missing")]
        titles = {o.id: o.title for o in offers}
        return {cid: (titles.get(p.offer_id, p.offer_id), p.offer_id) for cid, p in plans.items()}, []


async def _ask(
    owner: Owner, port: type, what: str, ask: Callable[[Any], Awaitable[Sequence[R]]]
) -> Report[R]:
    if owner.adapter is None or owner.system is None:
        return Report([], [NotConfigured(f"no system plays {owner.role} in the mapping: no {what}",
                                         role=owner.role)])
    system = owner.system
    if not isinstance(owner.adapter, port):
        return Report([], [_unsupported(system, what)])
    try:
        found = await call(system, REPORT_TIMEOUT, what, _supported(ask(owner.adapter)))
    except SystemUnavailable as exc:
        return Report([], [_partial(exc, f"no {what}")])
    if isinstance(found, NotSupported):
        return Report([], [_unsupported(system, what)])
    return Report(list(found))


async def _supported(awaitable: Awaitable[Sequence[R]]) -> Sequence[R] | NotSupported:
    """NotSupported as a value: `call` would report it as the system being unavailable."""
    try:
        return await awaitable
    except NotSupported as exc:
        return exc


def _unsupported(system: str, what: str) -> ReportNotSupported:
    return ReportNotSupported(f"system {system!r} does not report {what}", system=system)


def _partial(exc: SystemUnavailable, consequence: str) -> SystemUnavailable:
    return SystemUnavailable(f"{exc.message}; {consequence}", **exc.details)
