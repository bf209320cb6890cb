"""The domain's words (DESIGN.md) as plain typed values. No I/O, no GraphQL, no SQL: everything below
the API imports these, and so do adapters (through hub.ports)."""

from hub.model.contact import Channel, Contact, ContactEvent, ContactEventType, PropositionResponse
from hub.model.customer import (
    ATTRIBUTE_PREFIX,
    GOLDEN_ID,
    HUB_SYSTEM,
    UNIFIED_FIELDS,
    CustomerFacts,
    CustomerView,
    DataProblem,
    FieldSource,
    Key,
    KeyKind,
    OfferHistory,
    Segment,
    Shape,
    is_golden_id,
    shape_of,
)
from hub.model.decision import DecisionRequest, NextBestAction, Offer
from hub.model.request import (
    TRANSITIONS,
    CustomerRequest,
    RequestKind,
    RequestStatus,
    StatusChange,
    may_move,
)

__all__ = [
    "ATTRIBUTE_PREFIX",
    "GOLDEN_ID",
    "HUB_SYSTEM",
    "TRANSITIONS",
    "UNIFIED_FIELDS",
    "Channel",
    "Contact",
    "ContactEvent",
    "ContactEventType",
    "CustomerFacts",
    "CustomerRequest",
    "CustomerView",
    "DataProblem",
    "DecisionRequest",
    "FieldSource",
    "Key",
    "KeyKind",
    "NextBestAction",
    "Offer",
    "OfferHistory",
    "PropositionResponse",
    "RequestKind",
    "RequestStatus",
    "Segment",
    "Shape",
    "StatusChange",
    "is_golden_id",
    "may_move",
    "shape_of",
]
