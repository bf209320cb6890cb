"""The event catalog: every event type on the bus, with its typed payload, in one table.

The producers build `data` from these payloads, consumers read it back through `read`, and
tests/unit/test_asyncapi.py holds schema/asyncapi.yaml against this table. A new event type is one
entry in `CATALOG`.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from hub.events.envelope import CloudEvent, MalformedEvent
from hub.model import (
    Channel,
    ContactEvent,
    ContactEventType,
    LeadChannel,
    PropositionResponse,
    RequestKind,
    RequestStatus,
)
from hub.model.privacy import ConsentPurpose

Id = str


def _utc(value: datetime) -> datetime:
    # A producer on another stack may send a time without an offset: it is read as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UTCTime = Annotated[datetime, AfterValidator(_utc)]


class Payload(BaseModel):
    """`data` of a CloudEvent. Field names are the JSON names; every field is always present."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    def to_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ContactStarted(Payload):
    contactId: Id = Field(min_length=1, max_length=40)
    customerId: Id = Field(min_length=1, max_length=40)
    channel: Channel
    startedAt: UTCTime


class ContactEnded(Payload):
    contactId: Id = Field(min_length=1, max_length=40)
    customerId: Id = Field(min_length=1, max_length=40)
    channel: Channel
    outcome: str | None


class ContactEventData(Payload):
    eventType: ContactEventType
    customerId: Id = Field(min_length=1, max_length=40)
    contactId: Id = Field(min_length=1, max_length=40)
    channel: Channel
    occurredAt: UTCTime
    offerId: str | None = Field(default=None, min_length=1, max_length=80)
    response: PropositionResponse | None = None
    topic: str | None = Field(default=None, max_length=100)
    decisionId: str | None = None


class CustomerData(Payload):
    customerId: Id = Field(min_length=1, max_length=40)
    name: str | None = None
    emails: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)


class ConsentData(Payload):
    """A customer's consent for a purpose, in one channel or (`channel` null) in every channel, as the
    consent registry (the CRM) recorded it. The newest `at` per purpose and channel wins."""

    customerId: Id = Field(min_length=1, max_length=40)
    purpose: ConsentPurpose
    channel: Channel | None
    granted: bool
    at: UTCTime
    source: str = Field(min_length=1, max_length=60)  # api, unsubscribe, or the system it came from


class CustomerChanged(Payload):
    system: str = Field(min_length=1)
    customerIds: list[Id]


class RequestStatusData(Payload):
    """A customer request's status as the CRM reports it. The CloudEvent's subject is the customer id,
    its correlationid the request id; `at` is when the request got this status (the newest wins)."""

    requestId: Id = Field(min_length=1, max_length=40)
    customerId: Id = Field(min_length=1, max_length=40)
    kind: RequestKind
    status: RequestStatus
    at: UTCTime
    note: str | None = Field(default=None, max_length=500)
    by: str | None = Field(default=None, max_length=80)  # who gave the status: a channel, the back office


class RequestSubmittedData(Payload):
    """A customer request the CRM took in, for the back office to handle. Subject and correlationid as on
    request.status; the back office answers with request.status events carrying the same requestId."""

    requestId: Id = Field(min_length=1, max_length=40)
    customerId: Id = Field(min_length=1, max_length=40)
    contactId: Id = Field(min_length=1, max_length=40)
    kind: RequestKind
    subject: str = Field(min_length=1, max_length=200)
    details: str | None = Field(default=None, max_length=4000)
    offerId: str | None = Field(default=None, min_length=1, max_length=80)  # the offer a quote is for
    at: UTCTime


class LeadCreatedData(Payload):
    """An outbound lead CM planned, for LM to deliver. Subject: the customer; correlationid: the lead."""

    leadId: Id = Field(min_length=1, max_length=40)
    code: str = Field(min_length=4, max_length=40)
    campaignId: Id | None = Field(default=None, max_length=40)
    customerId: Id = Field(min_length=1, max_length=40)
    offerId: str = Field(min_length=1, max_length=80)
    title: str = Field(min_length=1, max_length=200)
    channel: LeadChannel
    decisionId: str = Field(min_length=1, max_length=120)
    at: UTCTime


class LeadResponseData(Payload):
    """A customer's response to a lead, through any channel, correlated by LM: CM learns from it."""

    leadId: Id = Field(min_length=1, max_length=40)
    customerId: Id = Field(min_length=1, max_length=40)
    offerId: str = Field(min_length=1, max_length=80)
    decisionId: str = Field(min_length=1, max_length=120)
    channel: Channel  # where the response came in (the email's link: EMAIL)
    response: PropositionResponse
    at: UTCTime


class PrivacyRequested(Payload):
    """A privacy request (erasure or export) for every system that handles privacy, each on a queue of
    its own (`privacy.<system>`). It names the request, not the customer's keys: the hub's handler of
    each system reads them from the hub's store, so no personal data travels on the bus or stays in a
    dead letter. Subject: the customer; correlationid: the request."""

    requestId: Id = Field(min_length=1, max_length=40)
    customerId: Id = Field(min_length=1, max_length=40)
    kind: Literal["ERASURE", "EXPORT"]
    at: UTCTime


@dataclass(frozen=True, slots=True)
class EventType:
    type: str  # the CloudEvent type, which is the routing key
    family: str
    payload: builtins.type[Payload]
    summary: str


CONTACT_STARTED = "contact.started"
CONTACT_ENDED = "contact.ended"
CUSTOMER_CREATED = "customer.created"
CUSTOMER_UPDATED = "customer.updated"
CUSTOMER_CHANGED = "hub.customer.changed"
CUSTOMER_CONSENT = "customer.consent"
REQUEST_STATUS = "request.status"
REQUEST_SUBMITTED = "request.submitted"
LEAD_CREATED = "lead.created"
LEAD_RESPONSE = "lead.response"
PRIVACY_ERASURE_REQUESTED = "privacy.erasure.requested"
PRIVACY_EXPORT_REQUESTED = "privacy.export.requested"

# A contact event's kind -> its CloudEvent type.
CONTACT_EVENT_TYPES: dict[ContactEventType, str] = {
    ContactEventType.PROPOSITION_SHOWN: "contact.proposition.shown",
    ContactEventType.PROPOSITION_RESPONSE: "contact.response",
    ContactEventType.INTEREST_SHOWN: "contact.interest.shown",
    ContactEventType.BANNER_CLICK: "contact.banner.click",
}
CONTACT_EVENT_KINDS: dict[str, ContactEventType] = {v: k for k, v in CONTACT_EVENT_TYPES.items()}

CATALOG: dict[str, EventType] = {
    e.type: e
    for e in (
        EventType(CONTACT_STARTED, "contact", ContactStarted, "A contact was registered."),
        EventType(CONTACT_ENDED, "contact", ContactEnded, "A contact ended."),
        EventType("contact.proposition.shown", "contact", ContactEventData, "An offer was shown."),
        EventType("contact.response", "contact", ContactEventData, "The customer answered an offer."),
        EventType("contact.interest.shown", "contact", ContactEventData, "Interest in a topic or offer."),
        EventType("contact.banner.click", "contact", ContactEventData, "A banner was clicked."),
        EventType(CUSTOMER_CREATED, "customer", CustomerData, "A new customer."),
        EventType(CUSTOMER_UPDATED, "customer", CustomerData, "New master data or keys for a customer."),
        EventType(CUSTOMER_CONSENT, "customer", ConsentData, "A customer's consent per purpose and channel."),
        EventType(
            CUSTOMER_CHANGED, "hub", CustomerChanged, "A system's data changed for customers (cache, pushes)."
        ),
        EventType(REQUEST_STATUS, "request", RequestStatusData, "A customer request's status, from the CRM."),
        EventType(
            REQUEST_SUBMITTED, "request", RequestSubmittedData, "A new customer request, for the back office."
        ),
        EventType(LEAD_CREATED, "lead", LeadCreatedData, "An outbound lead CM planned, for LM."),
        EventType(LEAD_RESPONSE, "lead", LeadResponseData, "A customer's response to a lead, for CM."),
        EventType(
            PRIVACY_ERASURE_REQUESTED, "privacy", PrivacyRequested,
            "Erase a customer everywhere (GDPR art. 17), for each system's privacy handler.",
        ),
        EventType(
            PRIVACY_EXPORT_REQUESTED, "privacy", PrivacyRequested,
            "Export a customer's data (GDPR art. 15, 20), for each system's privacy handler.",
        ),
    )
}

P = TypeVar("P", bound=Payload)


def make(
    type_: str,
    payload: Payload,
    *,
    source: str,
    subject: str | None = None,
    correlationid: str | None = None,
    time: datetime | None = None,
    id: str | None = None,
) -> CloudEvent:
    """A CloudEvent of a catalogued type; the payload must be the type's own."""
    entry = CATALOG[type_]
    if not isinstance(payload, entry.payload):
        raise TypeError(f"{type_} carries {entry.payload.__name__}, not {type(payload).__name__}")
    extra: dict[str, Any] = {}
    if time is not None:
        extra["time"] = time
    if id is not None:
        extra["id"] = id
    return CloudEvent(
        type=type_,
        source=source,
        data=payload.to_data(),
        subject=subject,
        correlationid=correlationid,
        **extra,
    )


def read(event: CloudEvent, payload: type[P]) -> P:
    """The event's data as its typed payload; MalformedEvent (a dead letter) when it does not fit."""
    entry = CATALOG.get(event.type)
    if entry is None or entry.payload is not payload:
        raise MalformedEvent(f"{event.type} {event.id}: not an event carrying {payload.__name__}")
    try:
        return payload.model_validate(event.data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "data"
        raise MalformedEvent(f"{event.type} {event.id}: data.{where}: {first['msg']}") from None


def contact_event_data(e: ContactEvent) -> ContactEventData:
    return ContactEventData(
        eventType=e.type,
        customerId=e.customer_id,
        contactId=e.contact_id,
        channel=e.channel,
        occurredAt=e.occurred_at,
        offerId=e.offer_id,
        response=e.response,
        topic=e.topic,
        decisionId=e.decision_id,
    )


def read_contact_event(event: CloudEvent) -> ContactEvent:
    """A contact event from the bus, checked against its type; MalformedEvent when it does not fit."""
    data = read(event, ContactEventData)
    expected = CONTACT_EVENT_KINDS[event.type]
    if data.eventType is not expected:
        raise MalformedEvent(
            f"{event.type} {event.id}: data.eventType {data.eventType.value} does not match"
            f" (expected {expected})"
        )
    needs_offer = data.eventType in (
        ContactEventType.PROPOSITION_SHOWN,
        ContactEventType.PROPOSITION_RESPONSE,
    )
    if needs_offer and not data.offerId:
        raise MalformedEvent(f"{event.type} {event.id}: {data.eventType.value} needs an offerId")
    if data.eventType is ContactEventType.PROPOSITION_RESPONSE and data.response is None:
        raise MalformedEvent(f"{event.type} {event.id}: a response needs its answer")
    return ContactEvent(
        id=event.id,
        type=data.eventType,
        customer_id=data.customerId,
        contact_id=data.contactId,
        channel=data.channel,
        occurred_at=data.occurredAt,
        offer_id=data.offerId,
        response=data.response,
        topic=data.topic,
        decision_id=data.decisionId,
    )
