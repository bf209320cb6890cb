"""The translator (message translator, in Camel's words): a system's record becomes its fragment of
the unified customer through the system's mapping, and fragments merge by survivorship.

A value that does not fit its unified field is a `DataProblem` naming the system and the field; the
field is then left to the other systems, never filled with something half-read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from hub.config import transforms
from hub.config.mapping import TEMPLATE_FIELD as _TEMPLATE_FIELD
from hub.config.mapping import FieldMap, HubMapping
from hub.model import (
    ATTRIBUTE_PREFIX,
    HUB_SYSTEM,
    Contact,
    CustomerView,
    DataProblem,
    FieldSource,
    OfferHistory,
    Segment,
    Shape,
    shape_of,
)

MISSING = object()


@dataclass(slots=True)
class Fragment:
    """One system's part of one customer: typed values by unified field, and what did not fit."""

    system: str
    values: dict[str, Any] = field(default_factory=dict)  # attributes flattened to attributes.<name>
    problems: list[DataProblem] = field(default_factory=list)
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime | None = None


def get_path(record: Any, path: str) -> Any:
    """The value at a dotted path; a number picks a list item, '*' maps the rest over every item."""
    return _walk(record, path.split("."), 0)


def _walk(node: Any, parts: list[str], i: int) -> Any:
    # A module function, not a closure: a recursive closure is a reference cycle, one per call, left
    # to the cyclic collector (get_path runs for every mapped field of every record read).
    if i == len(parts):
        return node
    part = parts[i]
    if part == "*":
        if not isinstance(node, list):
            return MISSING
        items = [_walk(item, parts, i + 1) for item in node]
        return [v for v in items if v is not MISSING and v is not None]
    if isinstance(node, Mapping):
        return _walk(node[part], parts, i + 1) if part in node else MISSING
    if isinstance(node, list) and part.isdigit():
        idx = int(part)
        return _walk(node[idx], parts, i + 1) if idx < len(node) else MISSING
    return MISSING


def _empty(v: Any) -> bool:
    return v is None or v is MISSING or v == "" or v == [] or v == {}


def _text(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ValueError(f"expected text, got {type(v).__name__}")
    return str(v)


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{what} must be a whole number, got {v!r}")
    return v


def _when(v: Any, what: str) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    if isinstance(v, str):
        try:
            parsed = datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"{what} is not an ISO date-time: {v!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"{what} is not a date-time: {v!r}")


def _scalar(v: Any) -> Any:
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    if isinstance(v, date):
        return v.isoformat()
    raise ValueError(f"expected text, a number or a boolean, got {type(v).__name__}")


def _segment(v: Any) -> Segment:
    if isinstance(v, str):
        return Segment(v, v)
    if isinstance(v, Mapping) and isinstance(v.get("id"), str):
        return Segment(v["id"], _text(v.get("name") or v["id"]))
    raise ValueError(f"a segment is an id or {{id, name}}, got {v!r}")


def _history(v: Any) -> OfferHistory:
    if not isinstance(v, Mapping) or not isinstance(v.get("offerId"), str):
        raise ValueError(f"an offer history item needs offerId, got {v!r}")
    return OfferHistory(
        offer_id=v["offerId"],
        shown=_int(v.get("shown", 0), "shown"),
        accepted=_int(v.get("accepted", 0), "accepted"),
        rejected=_int(v.get("rejected", 0), "rejected"),
        later=_int(v.get("later", 0), "later"),
        last_shown_at=_when(v.get("lastShownAt"), "lastShownAt"),
    )


def _list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


COERCE: dict[Shape, Callable[[Any], Any]] = {
    Shape.TEXT: _text,
    Shape.TEXTS: lambda v: [_text(x) for x in _list(v)],
    Shape.SEGMENTS: lambda v: [_segment(x) for x in _list(v)],
    Shape.OFFER_HISTORY: lambda v: [_history(x) for x in _list(v)],
    Shape.SCALAR: _scalar,
}


@dataclass(frozen=True, slots=True)
class _Field:
    unified: str
    shape: Shape
    fmap: FieldMap
    fns: tuple[Callable[[Any], Any], ...]


class Translator:
    """Built once per mapping (hot reload builds a new one): transforms are compiled here."""

    def __init__(self, mapping: HubMapping):
        self.mapping = mapping
        self._fields: dict[str, list[_Field]] = {}
        self._order = {name: i for i, name in enumerate(mapping.systems)}
        for system, cfg in mapping.systems.items():
            compiled = []
            for unified, fmap in cfg.fields().items():
                shape = shape_of(unified)
                assert shape is not None, "checked at load (hub.config.checks)"
                compiled.append(
                    _Field(unified, shape, fmap, tuple(transforms.build(t) for t in fmap.transform))
                )
            self._fields[system] = compiled

    def translate(
        self, system: str, record: Mapping[str, Any], fetched_at: datetime | None = None
    ) -> Fragment:
        frag = Fragment(system, fetched_at=fetched_at or datetime.now(UTC))
        if not isinstance(record, Mapping):
            frag.problems.append(
                DataProblem(system, "(record)", f"a record is an object, got {type(record).__name__}")
            )
            return frag
        cfg = self.mapping.systems[system]
        if cfg.updated_at:
            try:
                raw = get_path(record, cfg.updated_at)
                frag.updated_at = None if _empty(raw) else _when(raw, cfg.updated_at)
            except ValueError as exc:
                frag.problems.append(DataProblem(system, "updated_at", str(exc)))
        for f in self._fields[system]:
            try:
                value = self._value(record, f)
            except ValueError as exc:
                frag.problems.append(DataProblem(system, f.unified, str(exc)))
                continue
            if _empty(value):
                continue
            if f.shape is Shape.ATTRIBUTES:
                if not isinstance(value, Mapping):
                    frag.problems.append(
                        DataProblem(system, f.unified, f"expected an object, got {type(value).__name__}")
                    )
                    continue
                for name, item in value.items():
                    try:
                        scalar = _scalar(item)
                    except ValueError as exc:
                        frag.problems.append(DataProblem(system, f"{ATTRIBUTE_PREFIX}{name}", str(exc)))
                        continue
                    if not _empty(scalar):
                        frag.values.setdefault(f"{ATTRIBUTE_PREFIX}{name}", scalar)
            else:
                frag.values[f.unified] = value
        return frag

    def _value(self, record: Mapping[str, Any], f: _Field) -> Any:
        fmap = f.fmap
        if fmap.template is not None:
            parts = {p: get_path(record, p) for p in _TEMPLATE_FIELD.findall(fmap.template)}
            if all(_empty(v) for v in parts.values()):
                value: Any = MISSING
            else:
                value = _TEMPLATE_FIELD.sub(
                    lambda m: "" if _empty(parts[m.group(1)]) else str(parts[m.group(1)]), fmap.template
                ).strip()
        else:
            assert fmap.path is not None
            value = get_path(record, fmap.path)
        if _empty(value):
            if fmap.default is None:
                return None
            value = fmap.default
        for fn in f.fns:
            value = [fn(v) for v in value] if isinstance(value, list) else fn(value)
        if f.shape is Shape.ATTRIBUTES:
            return value
        return COERCE[f.shape](value)

    # --- merging -----------------------------------------------------------------------------------

    def merge(
        self,
        customer_id: str,
        fragments: Sequence[Fragment],
        contacts: Iterable[Contact] = (),
        unavailable: Mapping[str, str] | None = None,
    ) -> CustomerView:
        """The unified customer: each field from the fragment its survivorship rule prefers."""
        view = CustomerView(id=customer_id, unavailable=dict(unavailable or {}))
        for frag in fragments:
            view.problems.extend(frag.problems)
        fields = sorted({k for frag in fragments for k in frag.values})
        for unified in fields:
            candidates = [frag for frag in fragments if unified in frag.values]
            winner = min(candidates, key=self._rank_key(unified))
            value = winner.values[unified]
            if unified.startswith(ATTRIBUTE_PREFIX):
                view.attributes[unified[len(ATTRIBUTE_PREFIX) :]] = value
            else:
                setattr(view, _ATTR[unified], value)
            view.sources.append(FieldSource(unified, winner.system, winner.fetched_at))
        recent = list(contacts)
        if recent:
            view.contacts = recent
            view.sources.append(FieldSource("contacts", HUB_SYSTEM, datetime.now(UTC)))
        return view

    def _rank_key(self, unified: str) -> Callable[[Fragment], tuple[Any, ...]]:
        rules = self.mapping.survivorship
        rule = rules.get(unified)
        if rule is None and unified.startswith(ATTRIBUTE_PREFIX):
            rule = rules.get("attributes")
        order = self._order
        if rule == "newest":
            oldest = datetime.min.replace(tzinfo=UTC)
            return lambda f: (-(f.updated_at or oldest).timestamp(), order.get(f.system, 0))
        ranked = {name: i for i, name in enumerate(rule or ())}
        return lambda f: (ranked.get(f.system, len(ranked)), order.get(f.system, 0))


# unified field -> CustomerView attribute
_ATTR = {
    "name": "name",
    "emails": "emails",
    "phones": "phones",
    "products": "products",
    "segments": "segments",
    "offerHistory": "offer_history",
}
