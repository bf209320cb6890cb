"""The adapter SDK: everything an adapter author imports, and nothing else of the hub.

An adapter connects one system to the hub. It is a class that takes an `AdapterContext`, declares the
ports it implements (`ports = (ProfileSource, EventConsumer)`; a generic adapter whose config decides
which it serves also answers `serves(port) -> bool`, checked at load), may declare a pydantic `Config`
(validated at load, errors with file and line; secrets as `SecretStr`, read from the environment with
`${VAR}` in the mapping), and is registered under the entry-point group `markiting_hub.adapters`.
`hub.ports.testing` is the acceptance kit every adapter runs against itself.

Built-in systems share the hub's store, so the write ports take the caller's open connection (`tx`):
their effect commits with the hub's own state and outbox row, or not at all. An external system
ignores `tx`, is made safe by idempotency keys (the event id), and says `transactional = False`: the
hub then holds no write transaction while it answers.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, SecretStr
from sqlalchemy import MetaData, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.config.loader import Located, MappingError, Problem, load_located, validate
from hub.events import (
    CATALOG,
    CloudEvent,
    LeadCreatedData,
    LeadResponseData,
    MalformedEvent,
    read,
    read_contact_event,
    utcnow,
)
from hub.model import (
    GOLDEN_ID,
    CampaignPlan,
    Channel,
    Contact,
    ContactEvent,
    ContactEventType,
    CustomerFacts,
    CustomerRequest,
    DecisionRequest,
    Delivery,
    DeliveryOutcome,
    Lead,
    LeadChannel,
    LeadStatus,
    NextBestAction,
    Offer,
    OfferHistory,
    PropositionResponse,
    Recipient,
    RequestKind,
    RequestStatus,
    Segment,
    StatusChange,
    is_golden_id,
)
from hub.model.privacy import Consent, ConsentPurpose, PrivacySubject
from hub.model.report import CampaignCount, FunnelCount, Period, RequestCount, SegmentSize
from hub.store.db import reading
from hub.store.direct import SKIP_CONFLICTS, fetch_rows, insert_rows
from hub.store.types import PerDialect, UTCDateTime, any_of, dialect_insert, within

if TYPE_CHECKING:
    from hub.config.settings import Settings

Tx = AsyncConnection
# A system's record as the system names its fields; the mapping translates it into the unified view.
Record = Mapping[str, Any]


class NotSupported(NotImplementedError):
    """A port that an adapter declares but cannot serve says so instead of faking it."""


class PermanentError(Exception):
    """Raised for a message that will never succeed: it is dead-lettered at once, with this reason."""


class AdapterError(Exception):
    """A system failed. The message names the system; the hub reports it as SYSTEM_UNAVAILABLE."""

    def __init__(self, system: str, message: str):
        super().__init__(f"system {system!r}: {message}")
        self.system = system
        self.reason = message  # what callers read, beside the system's name


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    detail: str = ""


class AdapterConfig(BaseModel):
    """Base of an adapter's typed config: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(slots=True)
class AdapterContext:
    """What the registry hands an adapter when it builds it."""

    system: str
    settings: Settings
    engine: AsyncEngine  # the hub's store: for built-in systems; an external one ignores it
    config: Any = None  # the adapter's validated `Config` instance (a plain dict when it has none)
    mappings_dir: Path | None = None  # relative paths in config resolve from here (settings' by default)
    timeout: float = 5.0  # the mapping's per-system timeout, seconds
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("hub.adapter"))

    # The hub's store for reads outside a transaction (autocommit: one round trip per read).
    reader: AsyncEngine = field(init=False)

    def __post_init__(self) -> None:
        if self.mappings_dir is None:
            self.mappings_dir = Path(self.settings.mappings_dir)
        # An external system's context may come without the store (tests): then there is none to read.
        self.reader = reading(self.engine) if self.engine is not None else self.engine


@runtime_checkable
class Adapter(Protocol):
    system: str
    # The ports the class implements (checked by the registry), its config model, and its own tables:
    # a MetaData with its Alembic versions folder, migrated under a version table of its own.
    ports: ClassVar[tuple[type, ...]]

    async def start(self) -> None: ...

    async def check(self) -> Health: ...

    async def close(self) -> None: ...


@runtime_checkable
class ProfileSource(Protocol):
    async def fetch(self, keys: Sequence[str]) -> Mapping[str, Record]:
        """One batched read by the system's key (the mapping's `key`: the golden id, an email, the
        system's own id...): a record per known key; unknown keys are left out."""
        ...


@runtime_checkable
class ContactRegistry(Protocol):
    """The CRM side of a contact: the hub owns contact ids and the identity graph, the registry is
    told about customers and contacts in the hub's transaction."""

    async def upsert_customer(self, tx: Tx, facts: CustomerFacts) -> str | None:
        """Create or update master data; return the system's own id for the customer, if it has one
        (the hub links it as a key of kind <system name>)."""
        ...

    async def register_contact(self, tx: Tx, contact: Contact) -> None: ...

    async def end_contact(self, tx: Tx, contact: Contact) -> None: ...


@runtime_checkable
class BatchContactRegistry(Protocol):
    """Optional beside ContactRegistry: tell it about several customers and contacts at once, in `tx`,
    with the same effect as one by one. The hub starts concurrent contacts together in one transaction
    (group commit) and hands them to a registry that has it in one call each."""

    async def upsert_customers(self, tx: Tx, facts: Sequence[CustomerFacts]) -> list[str | None]:
        """`upsert_customer` for each, in order: the system's own id of each customer, or None."""
        ...

    async def register_contacts(self, tx: Tx, contacts: Sequence[Contact]) -> None: ...


@runtime_checkable
class RequestRegistry(Protocol):
    """The CRM's customer requests. The hub enforces the status transitions (hub.model.TRANSITIONS) and
    writes in its transaction; the registry stores each request with its status history."""

    async def add_request(self, tx: Tx, request: CustomerRequest) -> None:
        """Store a new request with its history so far."""
        ...

    async def add_status(self, tx: Tx, request_id: str, change: StatusChange) -> None:
        """Append a status to the request's history; it becomes the request's status."""
        ...

    async def locked_request(self, tx: Tx, request_id: str) -> CustomerRequest | None:
        """The request with its history, held (FOR UPDATE) until `tx` ends; None when unknown."""
        ...

    async def requests(self, request_ids: Sequence[str]) -> Mapping[str, CustomerRequest]:
        """Requests by id (unknown ids left out), read outside any transaction."""
        ...

    async def requests_of(self, customer_ids: Sequence[str]) -> Mapping[str, Sequence[CustomerRequest]]:
        """Each customer's requests, newest first (customers without any left out)."""
        ...


@runtime_checkable
class BackOffice(Protocol):
    """Handles customer requests. Told of each new request in the hub's transaction; may settle it at
    once (straight-through handling): the status changes it returns are applied like any other."""

    async def hand_over(self, tx: Tx, request: CustomerRequest) -> Sequence[StatusChange]: ...


@runtime_checkable
class DecisionEngine(Protocol):
    async def offers(self) -> Sequence[Offer]: ...

    async def decide(
        self, requests: Sequence[DecisionRequest], pending: Sequence[ContactEvent] = ()
    ) -> list[list[NextBestAction]]:
        """Rank NBAs for a batch of requests, in order. `pending` are accepted events not consumed
        yet: the engine ranks as if it had applied them (in memory only)."""
        ...


@runtime_checkable
class EventConsumer(Protocol):
    async def consume(self, tx: Tx, event: CloudEvent) -> Collection[str]:
        """Apply one event (in `tx` when the system shares the hub's store; otherwise idempotently by
        event id); return the golden ids of the customers whose view or NBAs changed."""
        ...


@runtime_checkable
class BatchEventConsumer(Protocol):
    """Optional beside EventConsumer: apply several events at once, in the order given, in `tx`, with
    the same effect as consuming them one by one (events applied before change nothing). The hub hands
    a destination that has it every event its queue has ready, up to a batch, in one transaction."""

    async def consume_batch(self, tx: Tx, events: Sequence[CloudEvent]) -> Collection[str]: ...


@runtime_checkable
class CampaignPlanner(Protocol):
    """CM's side of an outbound campaign: one lead per eligible customer (the offer's eligibility, its
    channels and the customer's contact preferences respected), each with a decision id. The leads go
    to LM as `lead.created` events written by the hub in the same transaction."""

    async def plan(self, tx: Tx, campaign: CampaignPlan) -> Sequence[Lead]: ...

    async def segments(self) -> Sequence[Segment]:
        """CM's segments, the ones a campaign may target."""
        ...

    async def campaigns(self, campaign_ids: Sequence[str]) -> Mapping[str, CampaignPlan]:
        """Campaigns by id (unknown ids left out)."""
        ...


@runtime_checkable
class LeadManager(Protocol):
    """LM owns leads: it takes them from CM (as `lead.created` events, through a flow: an LM is an
    EventConsumer too), hands out the due ones within each channel's capacity, records what became of
    each and the customer's response."""

    async def claim(self, channel: LeadChannel, limit: int) -> Sequence[Lead]:
        """Up to `limit` due leads of the channel, within its capacity now; they become SENDING."""
        ...

    async def settle(self, outcomes: Mapping[str, DeliveryOutcome]) -> None:
        """Lead id -> outcome: SENT, FAILED, or back to PLANNED for a later try (temporary)."""
        ...

    async def leads(self, lead_ids: Sequence[str]) -> Mapping[str, Lead]: ...

    async def by_code(self, code: str) -> Lead | None: ...

    async def of_campaigns(self, campaign_ids: Sequence[str]) -> Mapping[str, Sequence[Lead]]: ...

    async def callbacks(self, limit: int) -> Sequence[Lead]:
        """Call-center leads on the agents' list (sent, not answered), oldest first."""
        ...

    async def respond(
        self, tx: Tx, code: str, channel: str, response: PropositionResponse, at: datetime
    ) -> tuple[Lead, bool] | None:
        """Record the customer's response to the lead with `code`: the lead, and whether it is new (the
        same answer again is counted once); None for an unknown code."""
        ...

    async def unsubscribe(self, tx: Tx, code: str) -> Lead | None:
        """The customer of the lead with `code` wants no more leads over its channel (None: unknown)."""
        ...


@runtime_checkable
class OutboundChannel(Protocol):
    """Delivers leads: email, print, call center. `channel` says which outbound channel it is; a batch
    is what LM handed out in one round (one SMTP session, one print file)."""

    channel: LeadChannel

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[DeliveryOutcome]:
        """One outcome per delivery, in order."""
        ...


@runtime_checkable
class PrivacyHandler(Protocol):
    """GDPR for one system (articles 15, 17, 20): erase what it holds of a customer, or export it. The
    hub asks every system for each privacy request (through the bus, one queue per system) and keeps
    the system's receipt: DONE when the method returns; NOT_SUPPORTED when the system does not have
    this port, or raises `NotSupported`; FAILED with the reason when it raises (retried with the bus's
    back-off until the delivery limit, then dead-lettered: `hub dlq replay` tries again; at once for
    `PermanentError`). Both are idempotent per request (`subject.request_id`): a redelivery must change
    nothing more. A system that shares the hub's store works in `tx` (its effect commits with the
    receipt); an external one ignores `tx` (`transactional = False`). Neither logs personal data."""

    async def erase(self, tx: Tx, subject: PrivacySubject) -> str | None:
        """Delete (or irreversibly anonymise) everything the system holds of the customer; an unknown
        customer is done too. Returns a short detail for the receipt, without personal data ("3
        rows"), or None."""
        ...

    async def export(self, tx: Tx, subject: PrivacySubject) -> Mapping[str, Any]:
        """Everything the system holds of the customer, as JSON-able data ({} when it knows nothing)."""
        ...


@runtime_checkable
class ConsentRegistry(Protocol):
    """Where a customer's consents live (the CRM: they are master data): per purpose (marketing,
    profiling) and channel, or for every channel. The hub writes through it (GraphQL `setConsent`, the
    unsubscribe link) in its transaction, with a `customer.consent` event for the systems that act on
    consent (CM ranks and plans by it, LM sends by it)."""

    async def set_consent(self, tx: Tx, customer_id: str, consent: Consent) -> bool:
        """Record the customer's consent for its purpose and channel (channel None: every channel),
        replacing the one recorded before unless that one is newer; True when it changed anything."""
        ...

    async def consents(self, customer_ids: Sequence[str]) -> Mapping[str, Sequence[Consent]]:
        """Each customer's recorded consents (customers without any left out)."""
        ...


@runtime_checkable
class OfferReports(Protocol):
    """Optional beside DecisionEngine (CM owns offers, responses and segments): the numbers a marketer
    reads, aggregated by CM. A CM without them raises NotSupported (the report is then partial, with an
    error naming the system)."""

    async def funnel(
        self, period: Period, channel: Channel | None = None, offer_id: str | None = None
    ) -> Sequence[FunnelCount]:
        """Per offer and channel: propositions shown in contacts in the period, and the responses."""
        ...

    async def segment_sizes(self) -> Sequence[SegmentSize]:
        """How many customers each segment holds now (every segment, empty ones too)."""
        ...


@runtime_checkable
class LeadReports(Protocol):
    """Optional beside LeadManager (LM owns leads): per campaign and outbound channel, the leads made in
    the period and what became of them."""

    async def campaign_results(
        self, period: Period, channel: LeadChannel | None = None
    ) -> Sequence[CampaignCount]: ...


@runtime_checkable
class RequestReports(Protocol):
    """Optional beside RequestRegistry (the CRM owns requests): requests made in the period, by kind and
    current status."""

    async def request_counts(self, period: Period) -> Sequence[RequestCount]: ...


LEAD_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: a code is read out over the phone


def new_lead_code() -> str:
    """A lead's code, e.g. K7M2-QX9P: 40 bits, unguessable enough for a response link."""
    raw = "".join(secrets.choice(LEAD_CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


async def store_health(reader: AsyncEngine, what: str, *tables: Any) -> Health:
    """A built-in system's health: its own tables answer a read on the hub's store. Only the kind of a
    failure is told: a driver's message may carry the DSN."""
    try:
        async with reader.connect() as conn:
            for table in tables:
                await conn.execute(select(*list(table.primary_key.columns)).limit(1))
    except (SQLAlchemyError, OSError) as exc:
        return Health(False, f"{what} store unavailable ({type(exc).__name__})")
    return Health(True, "store reachable")


def ports_of(adapter_class: type) -> tuple[type, ...]:
    return tuple(getattr(adapter_class, "ports", ()))


def tables_of(adapter_class: type) -> tuple[MetaData | None, Path | None]:
    """An adapter's own tables and migrations folder (None, None for an adapter without tables)."""
    return getattr(adapter_class, "metadata", None), getattr(adapter_class, "migrations", None)


__all__ = [
    "CATALOG",
    "GOLDEN_ID",
    "SKIP_CONFLICTS",
    "Adapter",
    "AdapterConfig",
    "AdapterContext",
    "AdapterError",
    "BackOffice",
    "BatchContactRegistry",
    "BatchEventConsumer",
    "CampaignCount",
    "CampaignPlan",
    "CampaignPlanner",
    "Channel",
    "CloudEvent",
    "Consent",
    "ConsentPurpose",
    "ConsentRegistry",
    "Contact",
    "ContactEvent",
    "ContactEventType",
    "ContactRegistry",
    "CustomerFacts",
    "CustomerRequest",
    "DecisionEngine",
    "DecisionRequest",
    "Delivery",
    "DeliveryOutcome",
    "EventConsumer",
    "FunnelCount",
    "Health",
    "Lead",
    "LeadChannel",
    "LeadCreatedData",
    "LeadManager",
    "LeadReports",
    "LeadResponseData",
    "LeadStatus",
    "Located",
    "MalformedEvent",
    "MappingError",
    "NextBestAction",
    "NotSupported",
    "Offer",
    "OfferHistory",
    "OfferReports",
    "OutboundChannel",
    "PerDialect",
    "Period",
    "PermanentError",
    "PrivacyHandler",
    "PrivacySubject",
    "Problem",
    "ProfileSource",
    "PropositionResponse",
    "Recipient",
    "Record",
    "RequestCount",
    "RequestKind",
    "RequestRegistry",
    "RequestReports",
    "RequestStatus",
    "SecretStr",
    "Segment",
    "SegmentSize",
    "StatusChange",
    "Tx",
    "UTCDateTime",
    "any_of",
    "dialect_insert",
    "fetch_rows",
    "insert_rows",
    "is_golden_id",
    "load_located",
    "new_lead_code",
    "ports_of",
    "read",
    "read_contact_event",
    "store_health",
    "tables_of",
    "utcnow",
    "validate",
    "within",
]
