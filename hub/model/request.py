"""Customer requests: a quote, a service request or a complaint, owned by the CRM with its status."""

from __future__ import annotations

import enum


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
