"""Customer requests: a quote, a service request or a complaint, owned by the CRM with its status."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime


class RequestKind(enum.StrEnum):
    QUOTE = "QUOTE"
    SERVICE = "SERVICE"
    COMPLAINT = "COMPLAINT"


class RequestStatus(enum.StrEnum):
    """Declared in the order of a request's life: a consumer that gets two statuses of one request for
    the same moment keeps the later one in this order (CM does)."""

    OPEN = "OPEN"
    IN_PROGRESS = "IN_PROGRESS"
    WAITING_FOR_CUSTOMER = "WAITING_FOR_CUSTOMER"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


# Where a request may go from each status: one table, enforced by hub.core.requests. A closed request
# (completed, rejected, cancelled) stays closed: the customer submits a new one.
TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    RequestStatus.OPEN: frozenset({
        RequestStatus.IN_PROGRESS, RequestStatus.WAITING_FOR_CUSTOMER, RequestStatus.COMPLETED,
        RequestStatus.REJECTED, RequestStatus.CANCELLED,
    }),
    RequestStatus.IN_PROGRESS: frozenset({
        RequestStatus.WAITING_FOR_CUSTOMER, RequestStatus.COMPLETED, RequestStatus.REJECTED,
        RequestStatus.CANCELLED,
    }),
    RequestStatus.WAITING_FOR_CUSTOMER: frozenset({
        RequestStatus.IN_PROGRESS, RequestStatus.COMPLETED, RequestStatus.REJECTED, RequestStatus.CANCELLED,
    }),
    RequestStatus.COMPLETED: frozenset(),
    RequestStatus.REJECTED: frozenset(),
    RequestStatus.CANCELLED: frozenset(),
}


def may_move(current: RequestStatus, to: RequestStatus) -> bool:
    return to in TRANSITIONS[current]


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One step of a request's life: the status it got, when, who gave it (a channel, the back office,
    an agent) and why."""

    status: RequestStatus
    at: datetime
    by: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerRequest:
    id: str
    customer_id: str
    contact_id: str
    kind: RequestKind
    subject: str
    details: str | None
    status: RequestStatus
    created_at: datetime
    history: tuple[StatusChange, ...] = ()  # oldest first; the last one is `status`
    offer_id: str | None = None  # the offer a quote is for: held as a product once it is completed

    def moved(self, change: StatusChange) -> CustomerRequest:
        return replace(self, status=change.status, history=(*self.history, change))
