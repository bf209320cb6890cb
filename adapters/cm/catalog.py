"""The CM catalog: offers and segment rules, loaded from YAML and validated with file and line.

`mappings/cm/offers.yaml` holds `offers: [...]`, `mappings/cm/segments.yaml` holds `segments: [...]`.
Every problem - a pydantic error or a cross-check (duplicate id, unknown segment reference) - is
reported as `file:line: field: message` through `hub.config.loader.MappingError`.

Segment rules (`when`) are a tree:

- `all: [rule, ...]`, `any: [rule, ...]`, `not: rule`
- `{field: <profile attribute>, <op>: value}` with exactly one op of eq, ne, in, gt, gte, lt, lte, exists
- `{count: {event: <ContactEventType>, topic: <optional>, days: N}, <op>: value}` with exactly one op
  of eq, gt, gte, lt, lte: the number of such events in the last N days (today included).
- `{requests: {kind: <RequestKind or list>, status: <RequestStatus or list>, days: N}, <op>: value}`
  with exactly one op of eq, gt, gte, lt, lte: the number of the customer's requests (from
  `request.status`, the latest status of each) of one of those kinds, whose latest status is one of
  those, reached in the last N days (today included); each of kind, status and days is optional
  (absent: any). E.g. an open complaint: `{requests: {kind: COMPLAINT, status: [OPEN, IN_PROGRESS]}, gte: 1}`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from hub.model import RequestKind, RequestStatus
from hub.ports import Channel, ContactEventType, Located, MappingError, Problem, load_located, validate

ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# The longest window a counter is kept for, whatever the catalog uses (the floor; a catalog with a
# longer window keeps counters that long).
MIN_RETENTION_DAYS = 400


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


def _check_id(v: str) -> str:
    if not ID.match(v):
        raise ValueError("ids are lower-case letters, digits, '-' and '_'")
    if len(v) > 80:
        raise ValueError("ids are at most 80 characters")
    return v


# --- segment rules ---------------------------------------------------------------------------------

FIELD_OPS = ("eq", "ne", "in", "gt", "gte", "lt", "lte", "exists")
COUNT_OPS = ("eq", "gt", "gte", "lt", "lte")


class AllRule(_Strict):
    all: list[Rule] = Field(min_length=1)


class AnyRule(_Strict):
    any: list[Rule] = Field(min_length=1)


class NotRule(_Strict):
    not_: Rule = Field(alias="not")


class FieldRule(_Strict):
    field: str = Field(min_length=1)
    eq: Any = None
    ne: Any = None
    in_: list[Any] | None = Field(None, alias="in")
    gt: float | str | None = None
    gte: float | str | None = None
    lt: float | str | None = None
    lte: float | str | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _one_op(self) -> FieldRule:
        given = [op for op in FIELD_OPS if (op if op != "in" else "in_") in self.model_fields_set]
        if len(given) != 1:
            ops = ", ".join(FIELD_OPS)
            raise ValueError(f"a field rule needs exactly one of {ops} (got {given or 'none'})")
        return self

    @property
    def op(self) -> tuple[str, Any]:
        for op in FIELD_OPS:
            name = op if op != "in" else "in_"
            if name in self.model_fields_set:
                return op, getattr(self, name)
        raise AssertionError("validated rule without an op")


class CountSpec(_Strict):
    event: ContactEventType
    topic: str | None = None
    days: int = Field(gt=0, le=3660)

    @property
    def key(self) -> str:
        return counter_key(self.event, self.topic)


class _Counted(_Strict):
    """A rule that compares a number with exactly one op."""

    eq: int | None = None
    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None

    @model_validator(mode="after")
    def _one_op(self) -> _Counted:
        given = [op for op in COUNT_OPS if op in self.model_fields_set]
        if len(given) != 1:
            ops = ", ".join(COUNT_OPS)
            raise ValueError(f"a {self._what()} rule needs exactly one of {ops} (got {given or 'none'})")
        return self

    @classmethod
    def _what(cls) -> str:
        return "count"

    @property
    def op(self) -> tuple[str, int]:
        for op in COUNT_OPS:
            if op in self.model_fields_set:
                return op, getattr(self, op)
        raise AssertionError("validated rule without an op")


class CountRule(_Counted):
    count: CountSpec


class RequestSpec(_Strict):
    """Which of the customer's requests count: any of the kinds, any of the statuses (absent: any)."""

    kind: list[RequestKind] | None = Field(None, min_length=1)
    status: list[RequestStatus] | None = Field(None, min_length=1)
    days: int | None = Field(None, gt=0, le=3660)  # the latest status reached in the last N days

    @field_validator("kind", "status", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class RequestRule(_Counted):
    requests: RequestSpec

    @classmethod
    def _what(cls) -> str:
        return "requests"


_KINDS = ("all", "any", "not", "count", "requests", "field")


def _rule_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for kind in _KINDS:
            if kind in value:
                return f"rule({kind})"
        return None
    for kind, cls in (("all", AllRule), ("any", AnyRule), ("not", NotRule), ("count", CountRule),
                      ("requests", RequestRule), ("field", FieldRule)):
        if isinstance(value, cls):
            return f"rule({kind})"
    return None


# Tags carry "(...)" so hub.config.loader drops them from error paths: errors point at YAML keys.
Rule = Annotated[
    Annotated[AllRule, Tag("rule(all)")]
    | Annotated[AnyRule, Tag("rule(any)")]
    | Annotated[NotRule, Tag("rule(not)")]
    | Annotated[CountRule, Tag("rule(count)")]
    | Annotated[RequestRule, Tag("rule(requests)")]
    | Annotated[FieldRule, Tag("rule(field)")],
    Discriminator(
        _rule_kind,
        custom_error_type="rule",
        custom_error_message="a rule needs one of the keys all, any, not, field, count, requests",
    ),
]

AllRule.model_rebuild()
AnyRule.model_rebuild()
NotRule.model_rebuild()


def walk_rules(rule: Any) -> list[Any]:
    """Every rule in a tree, depth first."""
    out = [rule]
    if isinstance(rule, AllRule):
        for r in rule.all:
            out.extend(walk_rules(r))
    elif isinstance(rule, AnyRule):
        for r in rule.any:
            out.extend(walk_rules(r))
    elif isinstance(rule, NotRule):
        out.extend(walk_rules(rule.not_))
    return out


def counter_key(event: ContactEventType | str, topic: str | None = None) -> str:
    event = ContactEventType(event).value
    return f"{event}:{topic}" if topic else event


# --- offers and segments ---------------------------------------------------------------------------


class SegmentSpec(_Strict):
    id: str
    name: str = Field(min_length=1)
    description: str | None = None
    when: Rule

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v)


class Eligibility(_Strict):
    segments: list[str] = Field(default_factory=list, description="any-of; empty = everyone")
    exclude: list[str] = Field(default_factory=list)


class Fatigue(_Strict):
    max_shown: int = Field(gt=0)
    days: int = Field(gt=0, le=3660)


class OfferSpec(_Strict):
    id: str
    title: str = Field(min_length=1)
    description: str | None = None
    channels: list[Channel] = Field(min_length=1)
    topics: list[str] = Field(default_factory=list)
    value: float = Field(gt=0, description="business value of an acceptance")
    priority: float = Field(gt=0, description="base priority")
    eligibility: Eligibility = Eligibility()
    fatigue: Fatigue = Fatigue(max_shown=3, days=14)
    suppression_days: int = Field(30, ge=0, le=3660)
    later_factor: float = Field(0.5, gt=0, le=1)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v)


class OffersFile(_Strict):
    version: Literal[1] = 1
    offers: list[OfferSpec] = Field(min_length=1)


class SegmentsFile(_Strict):
    version: Literal[1] = 1
    segments: list[SegmentSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class Catalog:
    offers: tuple[OfferSpec, ...]
    segments: tuple[SegmentSpec, ...]
    offer_index: dict[str, OfferSpec] = field(init=False, repr=False, compare=False)
    segment_index: dict[str, SegmentSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "offer_index", {o.id: o for o in self.offers})
        object.__setattr__(self, "segment_index", {s.id: s for s in self.segments})

    def offer(self, offer_id: str | None) -> OfferSpec | None:
        return self.offer_index.get(offer_id) if offer_id else None

    @cached_property
    def version(self) -> str:
        """A short content hash: decision ids change when the catalog does."""
        doc = {
            "offers": [o.model_dump(mode="json", by_alias=True) for o in self.offers],
            "segments": [s.model_dump(mode="json", by_alias=True) for s in self.segments],
        }
        return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]

    @cached_property
    def retention_days(self) -> int:
        """How long daily counter buckets are kept: the longest window used, at least 400 days."""
        windows = [MIN_RETENTION_DAYS]
        for s in self.segments:
            windows += [r.count.days for r in walk_rules(s.when) if isinstance(r, CountRule)]
        windows += [o.fatigue.days for o in self.offers]
        return max(windows)


# --- loading ---------------------------------------------------------------------------------------


def _load(path: Path | str, text: str | None, model: type[Any],
          problems: list[Problem]) -> tuple[Any, Located] | None:
    try:
        located = load_located(path, text)
        if not isinstance(located.data, dict):
            problems.append(located.problem((), "expected a mapping at the top of the file"))
            return None
        return validate(located, model), located
    except MappingError as exc:
        problems.extend(exc.problems)
        return None


def _duplicates(items: list[Any], located: Located, key: str, what: str,
                problems: list[Problem]) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.id in seen:
            problems.append(located.problem(
                (key, i, "id"), f"duplicate {what} id {item.id!r} (first at {key}[{seen[item.id]}])"))
        else:
            seen[item.id] = i


def parse_catalog(
    offers_path: Path | str,
    segments_path: Path | str,
    *,
    offers_text: str | None = None,
    segments_text: str | None = None,
) -> Catalog:
    """Load, validate and cross-check both files; raise MappingError listing every problem found."""
    problems: list[Problem] = []
    offers = _load(offers_path, offers_text, OffersFile, problems)
    segments = _load(segments_path, segments_text, SegmentsFile, problems)
    if offers is None or segments is None:
        raise MappingError(problems)
    offers_doc, offers_loc = offers
    segments_doc, segments_loc = segments
    _duplicates(offers_doc.offers, offers_loc, "offers", "offer", problems)
    _duplicates(segments_doc.segments, segments_loc, "segments", "segment", problems)
    known = {s.id for s in segments_doc.segments}
    for i, offer in enumerate(offers_doc.offers):
        for part in ("segments", "exclude"):
            for j, ref in enumerate(getattr(offer.eligibility, part)):
                if ref not in known:
                    problems.append(offers_loc.problem(
                        ("offers", i, "eligibility", part, j),
                        f"unknown segment {ref!r} (not in {segments_loc.file})"))
        seen_channels: set[Channel] = set()
        for j, ch in enumerate(offer.channels):
            if ch in seen_channels:
                problems.append(offers_loc.problem(("offers", i, "channels", j), f"duplicate channel {ch}"))
            seen_channels.add(ch)
    if problems:
        raise MappingError(problems)
    return Catalog(tuple(offers_doc.offers), tuple(segments_doc.segments))


def load_catalog(mappings_dir: Path | str, offers: str = "cm/offers.yaml",
                 segments: str = "cm/segments.yaml") -> Catalog:
    base = Path(mappings_dir)
    return parse_catalog(base / offers, base / segments)

