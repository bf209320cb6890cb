"""Reporting words: counts over a period, as the systems that own the facts aggregate them.

CM owns offers, their responses and segments (the offer funnel, segment sizes); LM owns leads (campaign
results per channel); the CRM owns requests (requests by kind and status). The hub asks each through
its optional report port (hub.ports: OfferReports, LeadReports, RequestReports) and adds nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub.model.contact import Channel
from hub.model.lead import LeadChannel
from hub.model.request import RequestKind, RequestStatus


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end): either side open when None. Times are aware (UTC)."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class FunnelCount:
    """One offer in one channel: propositions shown in contacts, and the responses to them."""

    offer_id: str
    channel: Channel
    shown: int
    responded: int  # accepted + rejected + later
    accepted: int
    rejected: int

    @property
    def acceptance_rate(self) -> float | None:
        """accepted / shown; None when nothing was shown."""
        return self.accepted / self.shown if self.shown else None


@dataclass(frozen=True, slots=True)
class CampaignCount:
    """One campaign's leads over one outbound channel."""

    campaign_id: str
    channel: LeadChannel
    planned: int  # every lead LM holds for it
    sent: int  # delivered (sent, or answered)
    responded: int
    accepted: int


@dataclass(frozen=True, slots=True)
class SegmentSize:
    segment_id: str
    name: str
    customers: int


@dataclass(frozen=True, slots=True)
class RequestCount:
    kind: RequestKind
    status: RequestStatus
    count: int
