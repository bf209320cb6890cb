"""Privacy (GDPR articles 15, 17, 20): a customer's erasure or export, fanned out to every system, each
system's receipt; and a customer's consent per purpose and channel."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.model.contact import Channel
from hub.model.customer import Key


class PrivacyKind(enum.StrEnum):
    ERASURE = "ERASURE"  # article 17: every system forgets the customer
    EXPORT = "EXPORT"  # articles 15 and 20: every system's data about the customer, as one JSON document


class ReceiptStatus(enum.StrEnum):
    PENDING = "PENDING"  # not answered yet
    DONE = "DONE"
    FAILED = "FAILED"  # the last attempt failed (detail says why): retried, or dead-lettered (`final`)
    NOT_SUPPORTED = "NOT_SUPPORTED"  # the system does not implement the port, or is not configured for it


class PrivacyStatus(enum.StrEnum):
    PENDING = "PENDING"  # some systems have not answered, or failed and are being retried
    DONE = "DONE"  # every system answered DONE or NOT_SUPPORTED
    FAILED = "FAILED"  # a system's failure was dead-lettered; a replay of the dead letter tries again


SETTLED = frozenset({ReceiptStatus.DONE, ReceiptStatus.NOT_SUPPORTED})


@dataclass(frozen=True, slots=True)
class PrivacySubject:
    """Whom a privacy request is about, as a system is told. `key` is the customer's key in that system
    (the mapping's `key:` of it: the golden id, an email, the system's own id); `keys` are every key the
    hub knew for the customer when the request was made."""

    request_id: str
    customer_id: str
    key: str
    keys: tuple[Key, ...] = ()


@dataclass(frozen=True, slots=True)
class Receipt:
    system: str
    status: ReceiptStatus
    detail: str | None = None
    at: datetime | None = None  # when it got this status
    attempts: int = 0  # failed attempts so far (a replay of its dead letter counts from 0 again)
    final: bool = False  # FAILED and dead-lettered: nothing is retried until the dead letter is replayed

    @property
    def outstanding(self) -> bool:
        return self.status not in SETTLED


@dataclass(frozen=True, slots=True)
class PrivacyRequest:
    id: str
    kind: PrivacyKind
    customer_id: str
    status: PrivacyStatus
    created_at: datetime
    completed_at: datetime | None = None
    receipts: tuple[Receipt, ...] = ()
    # An export's document once every system answered: {"customerId", "requestId", "exportedAt",
    # "systems": {system: its part}, "notSupported": [system, ...]}; None before, and for an erasure.
    document: dict[str, Any] | None = None
    expires_at: datetime | None = None  # an export: when its document is deleted

    @property
    def outstanding(self) -> list[str]:
        return [r.system for r in self.receipts if r.outstanding]


def status_of(receipts: tuple[Receipt, ...] | list[Receipt]) -> PrivacyStatus:
    """A request's status from its receipts."""
    if any(r.status is ReceiptStatus.PENDING or (r.status is ReceiptStatus.FAILED and not r.final)
           for r in receipts):
        return PrivacyStatus.PENDING
    if any(r.status is ReceiptStatus.FAILED for r in receipts):
        return PrivacyStatus.FAILED
    return PrivacyStatus.DONE


class ConsentPurpose(enum.StrEnum):
    MARKETING = "MARKETING"  # offers: NBAs in a channel, outbound leads
    PROFILING = "PROFILING"  # segmenting and ranking on the customer's behaviour


@dataclass(frozen=True, slots=True)
class Consent:
    """A customer's consent for a purpose, in one channel or (channel None) in every channel. Where
    nothing is recorded, consent is assumed (the deployment's legal basis decides; opting out is
    always possible)."""

    purpose: ConsentPurpose
    channel: Channel | None
    granted: bool
    at: datetime
    source: str = "api"  # api | unsubscribe | a system's name (the CRM)


ANY_CHANNEL = "*"  # how a consent for every channel is keyed in stores


def withdrawn(consents: tuple[Consent, ...] | list[Consent], purpose: ConsentPurpose,
              channel: Channel | None) -> Consent | None:
    """The consent that withholds `purpose` in `channel`, or None when it is allowed. The newest
    statement that covers the channel decides: the channel's own, or one for every channel. With
    `channel` None (any channel), only a statement for every channel counts."""
    covering = [c for c in consents if c.purpose is purpose and (c.channel is None or c.channel is channel)]
    if not covering:
        return None  # nothing recorded: allowed
    newest = max(covering, key=lambda c: (c.at, c.channel is not None))
    return None if newest.granted else newest
