"""GraphQL types and resolvers of privacy (GDPR): erasure and export requests with each system's receipt,
and consents.

`download` is the export as one JSON document inline, not a URL: it needs exactly the credential scope of
`privacyRequest` (privacy:write) and no second endpoint with its own access rules, expiry and logs.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.api.context import Context
from hub.api.types import Channel  # registered for GraphQL there, before it is used here
from hub.core import reads
from hub.core.consents import ConsentService
from hub.core.errors import NotConfigured
from hub.core.privacy import PrivacyService
from hub.model.privacy import ConsentPurpose, PrivacyKind, PrivacyStatus, ReceiptStatus
from hub.model.privacy import PrivacyRequest as PrivacyRequestModel

I = Info[Context, None]  # noqa: E741

strawberry.enum(
    PrivacyKind,
    name="PrivacyRequestKind",
    description="ERASURE: every system forgets the customer (GDPR art. 17). EXPORT: every system's data "
    "about the customer as one JSON document (art. 15, 20).",
)
strawberry.enum(
    PrivacyStatus,
    name="PrivacyRequestStatus",
    description="PENDING while a system has not answered or is being retried (see `outstanding`); DONE "
    "when every system answered DONE or NOT_SUPPORTED; FAILED when a system's failure was dead-lettered "
    "(`hub dlq replay` tries it again).",
)
strawberry.enum(
    ReceiptStatus,
    name="PrivacyReceiptStatus",
    description="A system's answer: PENDING (not yet), DONE, FAILED (with the reason; retried until the "
    "delivery limit), NOT_SUPPORTED (the system has no privacy handler, or is not configured for it).",
)


@strawberry.type(description="One system's answer to a privacy request.")
class PrivacyReceipt:
    system: str = strawberry.field(description="As named in the mapping; `hub` is the hub's own part "
                                   "(identity keys, contacts).")
    status: ReceiptStatus
    detail: str | None = strawberry.field(description="What was done, or why it failed or is not supported.")
    at: datetime | None = strawberry.field(description="When the system got this status.")
    attempts: int = strawberry.field(description="Failed attempts so far.")


@strawberry.type(description="An erasure or export of one customer, fanned out to every system.")
class PrivacyRequest:
    id: strawberry.ID
    kind: PrivacyKind
    customer_id: strawberry.ID
    status: PrivacyStatus
    outstanding: list[str] = strawberry.field(
        description="The systems that have not answered DONE or NOT_SUPPORTED yet."
    )
    created_at: datetime
    completed_at: datetime | None
    receipts: list[PrivacyReceipt]
    download: JSON | None = strawberry.field(
        description="An export, once every system has answered: one JSON document, inline (it needs the "
        "same scope as this request), `{requestId, customerId, exportedAt, systems: {system: its part}, "
        "notSupported: [system]}`. Null before, once expired, and for an erasure."
    )
    download_expires_at: datetime | None = strawberry.field(
        description="An export: when its document is deleted (HUB_PRIVACY_EXPORT_RETENTION_SECONDS after it "
        "completed)."
    )

    @classmethod
    def of(cls, r: PrivacyRequestModel) -> PrivacyRequest:
        return cls(
            id=strawberry.ID(r.id),
            kind=r.kind,
            customer_id=strawberry.ID(r.customer_id),
            status=r.status,
            outstanding=r.outstanding,
            created_at=r.created_at,
            completed_at=r.completed_at,
            receipts=[
                PrivacyReceipt(
                    system=x.system, status=x.status, detail=x.detail, at=x.at, attempts=x.attempts
                )
                for x in r.receipts
            ],
            download=cast(JSON, r.document) if r.document is not None else None,
            download_expires_at=r.expires_at,
        )


def _service(info: I) -> PrivacyService:
    privacy = info.context.wiring.privacy
    if privacy is None:
        raise NotConfigured("privacy requests are not wired")
    return privacy


async def request(info: I, kind: PrivacyKind, customer_id: str) -> PrivacyRequest:
    return PrivacyRequest.of(await _service(info).request(kind, customer_id))


async def get(info: I, request_id: str) -> PrivacyRequest | None:
    found = await _service(info).get(request_id)
    return PrivacyRequest.of(found) if found else None


strawberry.enum(
    ConsentPurpose,
    description="What a consent is for. MARKETING: offers (next best actions in a channel, outbound leads). "
    "PROFILING: using the customer's behaviour (shown interest) to rank offers.",
)


@strawberry.type(description="A customer's consent for a purpose, in one channel or in every channel. Where "
                 "nothing is recorded, it is given.")
class Consent:
    purpose: ConsentPurpose
    channel: Channel | None = strawberry.field(description="Null: every channel.")
    granted: bool
    at: datetime = strawberry.field(description="When it was given or withdrawn.")
    source: str = strawberry.field(description="api (setConsent), unsubscribe (the link in an email), or the "
                                   "system it came from.")


async def consents_of(info: I, customer_id: str) -> list[Consent]:
    """Customer.consents: from the consent registry (the CRM), batched per request. Read live, not kept in
    the hub's caches, so an answer holding them is not kept whole either."""
    reads.uncacheable()
    found = await info.context.consents.load(customer_id)
    return [Consent(purpose=c.purpose, channel=c.channel, granted=c.granted, at=c.at, source=c.source)
            for c in found]


def _consents(info: I) -> ConsentService:
    service = info.context.wiring.consents
    if service is None:
        raise NotConfigured("no system keeps consents (consent_registry: a CRM whose adapter keeps them)")
    return service


async def set_consent(
    info: I, customer_id: str, purpose: ConsentPurpose, channel: Channel | None, granted: bool
) -> None:
    await _consents(info).set(customer_id, purpose, channel, granted)
