"""Outbound leads (scenario step 5): an offer CM plans for one customer over one outbound channel; LM
delivers it within the channel's capacity; the customer's response may come back through any channel."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from hub.model.contact import PropositionResponse


class LeadChannel(enum.StrEnum):
    """The outbound channels (GraphQL: OutboundChannel)."""

    EMAIL = "EMAIL"
    PRINT = "PRINT"
    CALLCENTER = "CALLCENTER"


class LeadStatus(enum.StrEnum):
    PLANNED = "PLANNED"  # with LM, waiting for its channel's capacity
    SENDING = "SENDING"  # handed to the channel; a crash here sends it again (at least once)
    SENT = "SENT"  # delivered (email accepted by the SMTP server, in a print file, on the call list)
    FAILED = "FAILED"  # could not be delivered: no address, a permanent refusal, retries used up
    RESPONDED = "RESPONDED"  # the customer answered, through any channel


class CampaignStatus(enum.StrEnum):
    PLANNED = "PLANNED"  # leads handed to LM, some still waiting
    DONE = "DONE"  # every lead sent, failed or answered


@dataclass(frozen=True, slots=True)
class Lead:
    id: str
    code: str  # what the customer carries back: in the email's link, on the letter, told to the agent
    campaign_id: str | None
    customer_id: str
    offer_id: str
    title: str
    channel: LeadChannel
    decision_id: str
    status: LeadStatus = LeadStatus.PLANNED
    created_at: datetime | None = None
    sent_at: datetime | None = None
    responded_at: datetime | None = None
    response: PropositionResponse | None = None
    response_channel: str | None = None
    detail: str | None = None  # the channel's delivery id, or why it failed


@dataclass(frozen=True, slots=True)
class Recipient:
    """Where a lead goes, read from the CRM when it is sent (not when it was planned)."""

    name: str | None
    email: str | None
    address: str | None  # postal address, lines joined by newlines


@dataclass(frozen=True, slots=True)
class Delivery:
    lead: Lead
    recipient: Recipient
    response_url: str  # the hub's link that records the response and redirects to the landing page
    unsubscribe_url: str


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What became of one delivery: sent (with the channel's id for it), or failed; a temporary failure
    is tried again later, a permanent one fails the lead with its reason."""

    sent: bool
    detail: str | None = None
    temporary: bool = False


@dataclass(frozen=True, slots=True)
class CampaignPlan:
    """What a marketer launched: an offer, over these channels, to a segment or a list of customers."""

    id: str
    offer_id: str
    channels: tuple[LeadChannel, ...]
    segment_id: str | None
    customer_ids: tuple[str, ...]
    created_at: datetime
