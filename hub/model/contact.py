"""Contacts: one interaction of one customer in one channel, and what happens during it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Channel(enum.StrEnum):
    WEBSITE = "WEBSITE"
    EMAIL = "EMAIL"
    CALLCENTER = "CALLCENTER"
    SHOP = "SHOP"


class ContactEventType(enum.StrEnum):
    PROPOSITION_SHOWN = "PROPOSITION_SHOWN"
    PROPOSITION_RESPONSE = "PROPOSITION_RESPONSE"
    INTEREST_SHOWN = "INTEREST_SHOWN"
    BANNER_CLICK = "BANNER_CLICK"


class PropositionResponse(enum.StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    LATER = "LATER"


@dataclass(frozen=True, slots=True)
class Contact:
    """Owned by the hub: the id is the hub's, the CRM is told (ContactRegistry)."""

    id: str
    customer_id: str
    channel: Channel
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """Something commercially interesting that happened during a contact."""

    id: str
    type: ContactEventType
    customer_id: str
    contact_id: str
    channel: Channel
    occurred_at: datetime
    offer_id: str | None = None
    response: PropositionResponse | None = None
    topic: str | None = None
    decision_id: str | None = None
