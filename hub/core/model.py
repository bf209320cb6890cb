"""The unified model's words (DESIGN.md): channels, contacts, contact events, NBAs, offers."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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


# CloudEvent types (= routing keys) of contact events.
EVENT_TYPES: dict[ContactEventType, str] = {
    ContactEventType.PROPOSITION_SHOWN: "contact.proposition.shown",
    ContactEventType.PROPOSITION_RESPONSE: "contact.response",
    ContactEventType.INTEREST_SHOWN: "contact.interest.shown",
    ContactEventType.BANNER_CLICK: "contact.banner.click",
}
EVENT_KINDS: dict[str, ContactEventType] = {v: k for k, v in EVENT_TYPES.items()}
CONTACT_STARTED = "contact.started"
CONTACT_ENDED = "contact.ended"
CUSTOMER_CREATED = "customer.created"


class KeyKind(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    CUSTOMER_ID = "customer"
    COOKIE_ID = "cookie"


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    customer_id: str
    channel: Channel
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """One contact event as CM sees it (the `data` of its CloudEvent)."""

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

    def to_data(self) -> dict[str, Any]:
        return {
            "eventType": self.type.value,
            "customerId": self.customer_id,
            "contactId": self.contact_id,
            "channel": self.channel.value,
            "occurredAt": self.occurred_at.isoformat(),
            "offerId": self.offer_id,
            "response": self.response.value if self.response else None,
            "topic": self.topic,
            "decisionId": self.decision_id,
        }

    @classmethod
    def from_data(cls, event_id: str, data: dict[str, Any]) -> ContactEvent:
        """Raises KeyError/ValueError on a payload that is not a contact event."""
        response = data.get("response")
        return cls(
            id=event_id,
            type=ContactEventType(data["eventType"]),
            customer_id=str(data["customerId"]),
            contact_id=str(data["contactId"]),
            channel=Channel(data["channel"]),
            occurred_at=datetime.fromisoformat(data["occurredAt"]),
            offer_id=data.get("offerId"),
            response=PropositionResponse(response) if response else None,
            topic=data.get("topic"),
            decision_id=data.get("decisionId"),
        )


@dataclass(frozen=True, slots=True)
class Offer:
    id: str
    title: str
    topics: tuple[str, ...]
    channels: tuple[Channel, ...]


@dataclass(frozen=True, slots=True)
class NextBestAction:
    offer_id: str
    title: str
    channel: Channel
    priority: float
    score: float
    reason: str
    decision_id: str


@dataclass(frozen=True, slots=True)
class Segment:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class OfferHistory:
    offer_id: str
    shown: int
    accepted: int
    rejected: int
    later: int
    last_shown_at: datetime | None


@dataclass(slots=True)
class CustomerView:
    """The unified customer, merged from every ProfileSource by the mapping's survivorship rules."""

    id: str
    name: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    offer_history: list[OfferHistory] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # system -> why it failed: partial data
