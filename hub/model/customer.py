"""The unified customer: identity keys, the fields of the view, and where each value came from."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.model.contact import Contact


class KeyKind(enum.StrEnum):
    """The identification keys a channel can give. A system's own customer id is a key kind too,
    named after the system (e.g. `crm` for `CRM-000123`): key kinds are plain strings."""

    EMAIL = "email"
    PHONE = "phone"
    CUSTOMER_ID = "customer"
    COOKIE_ID = "cookie"


# The key kind that is the golden id itself: systems that share the hub's ids are fetched by it.
GOLDEN_ID = "id"
GOLDEN_ID_PREFIX = "cus_"
# The hub itself as the source of the fields it owns (contacts), in lineage and in its caches.
HUB_SYSTEM = "hub"


def is_golden_id(value: str | None) -> bool:
    """A golden customer id as the hub makes them (`cus_` and hex), e.g. in an event's subject."""
    if not value or not value.startswith(GOLDEN_ID_PREFIX) or len(value) > 40:
        return False
    rest = value[len(GOLDEN_ID_PREFIX):]
    return bool(rest) and all(c in "0123456789abcdef" for c in rest)


@dataclass(frozen=True, slots=True)
class Key:
    kind: str
    value: str

    def __post_init__(self) -> None:
        # A KeyKind member hashes by its name, a plain string by its value: keep one form, the string.
        object.__setattr__(self, "kind", str(self.kind))


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


@dataclass(frozen=True, slots=True)
class FieldSource:
    """Lineage: which system supplied a field of the view, and when it was read."""

    field: str
    system: str
    fetched_at: datetime


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """Master data a channel gave about a customer, handed to the contact registry (CRM)."""

    customer_id: str
    name: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DataProblem:
    """A system's record that does not fit the unified model: named, never silently dropped."""

    system: str
    field: str
    message: str


@dataclass(slots=True)
class CustomerView:
    """The unified customer, assembled at read time from every profile source by the mapping."""

    id: str
    name: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    offer_history: list[OfferHistory] = field(default_factory=list)
    products: list[str] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    sources: list[FieldSource] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # system -> why it failed: partial data
    problems: list[DataProblem] = field(default_factory=list)


class Shape(enum.StrEnum):
    """What a unified field holds; the translator checks a system's value against it."""

    TEXT = "text"
    TEXTS = "texts"  # a list of text
    SEGMENTS = "segments"  # [{id, name}]
    OFFER_HISTORY = "offer_history"  # [{offerId, shown, accepted, rejected, later, lastShownAt}]
    SCALAR = "scalar"  # text, number, boolean or date: one of `attributes`
    ATTRIBUTES = "attributes"  # {name: scalar}


# The unified customer's fields as mappings name them. `attributes.<name>` maps one attribute.
# `contacts` is the hub's own (it owns contacts) and is not mapped from systems.
UNIFIED_FIELDS: dict[str, Shape] = {
    "name": Shape.TEXT,
    "emails": Shape.TEXTS,
    "phones": Shape.TEXTS,
    "products": Shape.TEXTS,
    "segments": Shape.SEGMENTS,
    "offerHistory": Shape.OFFER_HISTORY,
    "attributes": Shape.ATTRIBUTES,
}
ATTRIBUTE_PREFIX = "attributes."


def shape_of(unified_field: str) -> Shape | None:
    if unified_field.startswith(ATTRIBUTE_PREFIX) and len(unified_field) > len(ATTRIBUTE_PREFIX):
        return Shape.SCALAR
    return UNIFIED_FIELDS.get(unified_field)
