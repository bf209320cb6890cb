"""The CM decision policy: pure functions over one customer's state. No I/O; `now` is passed in.

Order of `rank`: eligibility (segments, channel) -> fatigue cap -> suppression -> arbitration -> top N.

Arbitration score = priority x propensity x value x interest boost x later factor, where

- propensity = (accepted + PRIOR_A) / (shown + PRIOR_A + PRIOR_B), learned per offer from all customers'
  responses. The Beta(1, 9) prior starts every offer at 10 % and lets ~10 shows of evidence move it
  half-way, so a new offer is neither ignored nor over-trusted.
- interest boost = 1 + INTEREST_STEP x min(interest, INTEREST_CAP) for the offer's most-interesting
  topic, where interest = INTEREST_SHOWN + BANNER_CLICK events on that topic in the last
  INTEREST_DAYS days: at most x2.0.
- later factor = the offer's `later_factor` while the customer's last response to it is LATER.

Ties are broken by offer id. Counters are daily buckets updated per event, never recomputed.

Requests (`request.status`, from the CRM): the state keeps each request's latest status by its `at`
(an older one arriving late is ignored), for the newest MAX_REQUESTS requests; segment rules count them.

Consents (`customer.consent`, from the consent registry): per purpose and channel (or every channel) the
newest statement. No marketing consent in a channel: no offers there (an NBA request for it gets none;
one for any channel offers each offer by a channel it may go by, and says which it skipped; a campaign
plans no lead by it). No profiling consent: the customer's shown interest is not used, and the reason
says so. Nothing recorded: allowed.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.events import ConsentData, RequestStatusData
from hub.model import (
    Channel,
    ContactEvent,
    ContactEventType,
    NextBestAction,
    PropositionResponse,
    RequestKind,
    RequestStatus,
    Segment,
)
from hub_adapters.cm.catalog import (
    AllRule,
    AnyRule,
    Catalog,
    CountRule,
    FieldRule,
    NotRule,
    OfferSpec,
    RequestRule,
    SegmentSpec,
    counter_key,
)

PRIOR_A = 1.0
PRIOR_B = 9.0
INTEREST_DAYS = 30
INTEREST_STEP = 0.25
INTEREST_CAP = 4
INTEREST_EVENTS = (ContactEventType.INTEREST_SHOWN, ContactEventType.BANNER_CLICK)
RECENT_EVENT_IDS = 100  # event ids remembered per customer, so an event is never applied twice
MAX_REQUESTS = 50  # requests kept per customer: the newest by the time of their latest status
# At the same `at`, the status later in a request's life wins (declaration order; then the kind's), so
# the status kept never depends on the order statuses arrive in.
_STATUS_RANK = {s: i for i, s in enumerate(RequestStatus)}
_KIND_RANK = {k: i for i, k in enumerate(RequestKind)}

Learning = Mapping[str, tuple[int, int]]  # offer id -> (shown, accepted), over all customers


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _iso(ts: datetime | None) -> str | None:
    return _aware(ts).isoformat() if ts is not None else None


def _parse(ts: str | None) -> datetime | None:
    return _aware(datetime.fromisoformat(ts)) if ts else None


@dataclass
class OfferState:
    shown: int = 0
    accepted: int = 0
    rejected: int = 0
    later: int = 0
    last_shown_at: datetime | None = None
    last_response: PropositionResponse | None = None
    last_response_at: datetime | None = None
    shows_since_response: list[datetime] = field(default_factory=list)  # for the fatigue cap
    suppressed_until: datetime | None = None
    removed: bool = False  # accepted: never offered again
    last_decision_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "shown": self.shown,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "later": self.later,
            "last_shown_at": _iso(self.last_shown_at),
            "last_response": (
                {"type": self.last_response.value, "at": _iso(self.last_response_at)}
                if self.last_response else None
            ),
            "shows_since_response": [_iso(t) for t in self.shows_since_response],
            "suppressed_until": _iso(self.suppressed_until),
            "removed": self.removed,
            "last_decision_id": self.last_decision_id,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OfferState:
        resp = d.get("last_response") or None
        return cls(
            shown=int(d.get("shown", 0)),
            accepted=int(d.get("accepted", 0)),
            rejected=int(d.get("rejected", 0)),
            later=int(d.get("later", 0)),
            last_shown_at=_parse(d.get("last_shown_at")),
            last_response=PropositionResponse(resp["type"]) if resp else None,
            last_response_at=_parse(resp.get("at")) if resp else None,
            shows_since_response=[t for t in (_parse(s) for s in d.get("shows_since_response", [])) if t],
            suppressed_until=_parse(d.get("suppressed_until")),
            removed=bool(d.get("removed", False)),
            last_decision_id=d.get("last_decision_id"),
        )


@dataclass
class RequestState:
    """A customer request's latest status as the CRM reported it (`at`: when it got it, UTC)."""

    kind: RequestKind
    status: RequestStatus
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "status": self.status.value, "at": _iso(self.at)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RequestState:
        at = _aware(datetime.fromisoformat(d["at"]))
        return cls(RequestKind(d["kind"]), RequestStatus(d["status"]), at)


@dataclass
class CustomerState:
    """One customer as CM knows it; `to_dict()` is what the store keeps (JSON)."""

    attributes: dict[str, Any] = field(default_factory=dict)
    # "<EVENT_TYPE>" or "<EVENT_TYPE>:<topic>" -> {"YYYY-MM-DD": n}
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    offers: dict[str, OfferState] = field(default_factory=dict)
    recent_events: list[str] = field(default_factory=list)
    requests: dict[str, RequestState] = field(default_factory=dict)  # request id -> its latest status
    # "<PURPOSE>:<CHANNEL or *>" -> {"granted": bool, "at": iso}: the newest statement of each
    consents: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 0  # +1 per applied change; part of the decision id

    def to_dict(self) -> dict[str, Any]:
        return {
            "attributes": dict(self.attributes),
            "counters": {k: dict(v) for k, v in self.counters.items()},
            "offers": {k: v.to_dict() for k, v in sorted(self.offers.items())},
            "recent_events": list(self.recent_events),
            "requests": {k: v.to_dict() for k, v in sorted(self.requests.items())},
            "consents": {k: dict(v) for k, v in sorted(self.consents.items())},
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> CustomerState:
        if not d:
            return cls()
        return cls(
            attributes=dict(d.get("attributes", {})),
            counters={k: {day: int(n) for day, n in v.items()} for k, v in d.get("counters", {}).items()},
            offers={k: OfferState.from_dict(v) for k, v in d.get("offers", {}).items()},
            recent_events=list(d.get("recent_events", [])),
            requests={k: RequestState.from_dict(v) for k, v in (d.get("requests") or {}).items()},
            consents={k: dict(v) for k, v in (d.get("consents") or {}).items()},
            version=int(d.get("version", 0)),
        )

    def count(self, key: str, days: int, now: datetime) -> int:
        """Events counted under `key` in the last `days` days, today (UTC) included."""
        buckets = self.counters.get(key)
        if not buckets:
            return 0
        first = (_aware(now).astimezone(UTC).date() - timedelta(days=days - 1)).isoformat()
        last = _aware(now).astimezone(UTC).date().isoformat()
        return sum(n for day, n in buckets.items() if first <= day <= last)

    def interest(self, topic: str, now: datetime, days: int = INTEREST_DAYS) -> int:
        return sum(self.count(counter_key(e, topic), days, now) for e in INTEREST_EVENTS)


# --- state changes ---------------------------------------------------------------------------------


def _prune(counters: dict[str, dict[str, int]], now: datetime, keep_days: int) -> None:
    oldest = (_aware(now).astimezone(UTC).date() - timedelta(days=keep_days)).isoformat()
    for key in list(counters):
        buckets = {day: n for day, n in counters[key].items() if day > oldest}
        if buckets:
            counters[key] = buckets
        else:
            del counters[key]


def _topics(event: ContactEvent, offer: OfferSpec | None) -> list[str]:
    if event.topic:
        return [event.topic]
    return list(offer.topics) if offer else []


def apply_event(state: CustomerState, event: ContactEvent, now: datetime, catalog: Catalog) -> CustomerState:
    """Return the state after one contact event; `state` is not changed.

    An event whose id was applied already returns `state` itself (same object, same version).
    The catalog gives an offer's topics (for topic counters) and its suppression and fatigue windows.
    """
    if event.id in state.recent_events:
        return state
    new = copy.deepcopy(state)
    apply_in_place(new, event, now, catalog)
    return new


def apply_in_place(new: CustomerState, event: ContactEvent, now: datetime, catalog: Catalog) -> bool:
    """`apply_event` on a state the caller owns (read for this call, shared with nobody): it is changed
    itself, without a copy. False when the event was applied to it before."""
    if event.id in new.recent_events:
        return False
    at = _aware(event.occurred_at)
    offer = catalog.offer(event.offer_id)
    day = at.astimezone(UTC).date().isoformat()

    keys = [counter_key(event.type)] + [counter_key(event.type, t) for t in _topics(event, offer)]
    for key in dict.fromkeys(keys):
        buckets = new.counters.setdefault(key, {})
        buckets[day] = buckets.get(day, 0) + 1
    _prune(new.counters, now, catalog.retention_days)

    if event.offer_id:
        st = new.offers.setdefault(event.offer_id, OfferState())
        if event.decision_id:
            st.last_decision_id = event.decision_id
        if event.type is ContactEventType.PROPOSITION_SHOWN:
            st.shown += 1
            st.last_shown_at = max(st.last_shown_at, at) if st.last_shown_at else at
            window = timedelta(days=offer.fatigue.days if offer else INTEREST_DAYS)
            shows = st.shows_since_response
            if st.last_response_at is None or at > st.last_response_at:  # late arrivals don't count
                shows = [*shows, at]
            st.shows_since_response = sorted(t for t in shows if t > _aware(now) - window)
        elif event.type is ContactEventType.PROPOSITION_RESPONSE and event.response:
            st.last_response, st.last_response_at = event.response, at
            st.shows_since_response = []  # a response resets the fatigue count
            if event.response is PropositionResponse.ACCEPTED:
                st.accepted += 1
                st.removed = True
            elif event.response is PropositionResponse.REJECTED:
                st.rejected += 1
                days = offer.suppression_days if offer else 30
                until = at + timedelta(days=days)
                st.suppressed_until = max(st.suppressed_until, until) if st.suppressed_until else until
            else:
                st.later += 1

    new.recent_events = [*new.recent_events, event.id][-RECENT_EVENT_IDS:]
    new.version += 1
    return True


def apply_attributes(state: CustomerState, attributes: Mapping[str, Any]) -> CustomerState:
    """Merge profile attributes (customer.created / customer.updated); a None value removes one. The
    version stays when nothing changed."""
    new = copy.deepcopy(state)
    attributes_in_place(new, attributes)
    return new


def attributes_in_place(new: CustomerState, attributes: Mapping[str, Any]) -> bool:
    """`apply_attributes` on a state the caller owns. False (and no new version) when nothing changed:
    a customer event without attributes, or with the values CM has already."""
    changed = False
    for key, value in attributes.items():
        if value is None:
            changed = new.attributes.pop(key, None) is not None or changed
        elif new.attributes.get(key) != value:
            new.attributes[key] = value
            changed = True
    if changed:
        new.version += 1
    return changed


def apply_request_status(state: CustomerState, data: RequestStatusData) -> CustomerState:
    """Return the state after one `request.status`; `state` is not changed. The version stays when
    nothing changed: a status older than the one kept, the same status again, or a request older than
    every one of the MAX_REQUESTS kept."""
    new = copy.deepcopy(state)
    request_status_in_place(new, data)
    return new


def request_status_in_place(new: CustomerState, data: RequestStatusData) -> bool:
    """`apply_request_status` on a state the caller owns. False (and no new version) when nothing changed.

    Per request the newest status by `at` wins (statuses come in daily batches, possibly out of order);
    at the same `at` the one later in RequestStatus's order. Beyond MAX_REQUESTS requests the oldest (by
    `at`, then id) is dropped; a request as old as that is not taken in at all, so it cannot come back.
    Whatever order the statuses arrive in, the same ones are kept.
    """
    at = _aware(data.at).astimezone(UTC)
    kept = new.requests.get(data.requestId)
    if kept is not None:
        if _precedence(at, data.status, data.kind) <= _precedence(kept.at, kept.status, kept.kind):
            return False  # older than the status kept (a late arrival), or the same again
    elif len(new.requests) >= MAX_REQUESTS and (at, data.requestId) < _oldest_request(new):
        return False
    new.requests[data.requestId] = RequestState(data.kind, data.status, at)
    while len(new.requests) > MAX_REQUESTS:
        del new.requests[_oldest_request(new)[1]]
    new.version += 1
    return True


MARKETING = "MARKETING"
PROFILING = "PROFILING"
EVERY_CHANNEL = "*"


def consent_in_place(new: CustomerState, data: ConsentData) -> bool:
    """A consent statement on a state the caller owns: kept when it is newer than the one kept for its
    purpose and channel. False (and no new version) when it changes nothing: older, or the same again."""
    key = f"{data.purpose.value}:{data.channel.value if data.channel else EVERY_CHANNEL}"
    at = _aware(data.at).astimezone(UTC)
    kept = new.consents.get(key)
    if kept is not None:
        kept_at = _parse(kept["at"])
        if kept_at is not None and (kept_at > at or (kept_at == at and kept["granted"] == data.granted)):
            return False
    new.consents[key] = {"granted": data.granted, "at": _iso(at)}
    new.version += 1
    return True


def apply_consent(state: CustomerState, data: ConsentData) -> CustomerState:
    """Return the state after one `customer.consent`; `state` is not changed."""
    new = copy.deepcopy(state)
    consent_in_place(new, data)
    return new


def withheld(state: CustomerState, purpose: str, channel: str | None) -> str | None:
    """Why `purpose` is not allowed in `channel` (None: any channel, where only a statement for every
    channel counts), e.g. "no marketing consent by EMAIL"; None when it is allowed. The newest statement
    covering the channel decides (the channel's own one at the same moment)."""
    covering = [
        (key.split(":", 1)[1], value)
        for key, value in state.consents.items()
        if key == f"{purpose}:{EVERY_CHANNEL}" or (channel is not None and key == f"{purpose}:{channel}")
    ]
    if not covering:
        return None
    where, newest = max(covering, key=lambda kv: (_parse(kv[1]["at"]) or datetime.min.replace(tzinfo=UTC),
                                                  kv[0] != EVERY_CHANNEL))
    if newest.get("granted", True):
        return None
    scope = "in any channel" if where == EVERY_CHANNEL else f"by {where}"
    return f"no {purpose.lower()} consent {scope}"


def _precedence(at: datetime, status: RequestStatus, kind: RequestKind) -> tuple[datetime, int, int]:
    return at, _STATUS_RANK[status], _KIND_RANK[kind]


def _oldest_request(state: CustomerState) -> tuple[datetime, str]:
    """(at, id) of the request whose latest status is the oldest (ties: the smallest id)."""
    return min((r.at, rid) for rid, r in state.requests.items())


def count_requests(state: CustomerState, rule: RequestRule, now: datetime) -> int:
    """How many of the customer's requests a `requests` rule counts."""
    spec = rule.requests
    first = (_aware(now).astimezone(UTC).date() - timedelta(days=spec.days - 1)) if spec.days else None
    return sum(
        1
        for r in state.requests.values()
        if (spec.kind is None or r.kind in spec.kind)
        and (spec.status is None or r.status in spec.status)
        and (first is None or r.at.astimezone(UTC).date() >= first)
    )


# --- segments --------------------------------------------------------------------------------------


def _compare(op: str, actual: Any, expected: Any) -> bool:
    try:
        if op == "eq":
            return bool(actual == expected)
        if op == "ne":
            return bool(actual != expected)
        if op == "in":
            return actual in expected
        if op == "gt":
            return bool(actual > expected)
        if op == "gte":
            return bool(actual >= expected)
        if op == "lt":
            return bool(actual < expected)
        if op == "lte":
            return bool(actual <= expected)
    except TypeError:  # e.g. "gold" > 3: not a match
        return False
    raise ValueError(f"unknown operator {op!r}")


def matches(rule: Any, state: CustomerState, now: datetime) -> bool:
    """Evaluate a segment rule. A missing attribute matches only `ne` and `exists: false`."""
    if isinstance(rule, AllRule):
        return all(matches(r, state, now) for r in rule.all)
    if isinstance(rule, AnyRule):
        return any(matches(r, state, now) for r in rule.any)
    if isinstance(rule, NotRule):
        return not matches(rule.not_, state, now)
    if isinstance(rule, FieldRule):
        op, expected = rule.op
        present = state.attributes.get(rule.field) is not None
        if op == "exists":
            return present == bool(expected)
        if not present:
            return op == "ne"
        return _compare(op, state.attributes[rule.field], expected)
    if isinstance(rule, CountRule):
        op, expected = rule.op
        return _compare(op, state.count(rule.count.key, rule.count.days, now), expected)
    if isinstance(rule, RequestRule):
        op, expected = rule.op
        return _compare(op, count_requests(state, rule, now), expected)
    raise TypeError(f"not a segment rule: {rule!r}")


def segments_of(state: CustomerState, segments: Iterable[SegmentSpec], now: datetime) -> list[Segment]:
    return [Segment(s.id, s.name) for s in segments if matches(s.when, state, now)]


# --- ranking ---------------------------------------------------------------------------------------


def propensity(learning: Learning, offer_id: str) -> float:
    shown, accepted = learning.get(offer_id, (0, 0))
    shown, accepted = max(int(shown), 0), max(int(accepted), 0)
    return (accepted + PRIOR_A) / (shown + PRIOR_A + PRIOR_B)


def interest_boost(state: CustomerState, offer: OfferSpec, now: datetime) -> tuple[float, str | None, int]:
    """(boost, topic, count) for the offer's most-interesting topic (first topic wins a tie)."""
    best_topic, best = None, 0
    for topic in offer.topics:
        n = state.interest(topic, now)
        if n > best:
            best_topic, best = topic, n
    return 1 + INTEREST_STEP * min(best, INTEREST_CAP), best_topic, best


def fatigued(st: OfferState | None, offer: OfferSpec, now: datetime) -> bool:
    if st is None:
        return False
    since = _aware(now) - timedelta(days=offer.fatigue.days)
    return sum(1 for t in st.shows_since_response if t > since) >= offer.fatigue.max_shown


def decision_id(customer_id: str, channel: Channel | None, state_version: int, catalog_version: str,
                offer_ids: Sequence[str]) -> str:
    raw = "|".join([customer_id, channel.value if channel else "*", str(state_version), catalog_version,
                    ",".join(offer_ids)])
    return "dec_" + hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class _Candidate:
    offer: OfferSpec
    channel: Channel
    score: float
    reason: Callable[[], str]  # said only for the candidates that make the list


def _eligible_by(offer: OfferSpec, member: set[str], names: Mapping[str, str]) -> str | None:
    """Why the offer is eligible by segment, or None when it is not."""
    if any(s in member for s in offer.eligibility.exclude):
        return None
    if not offer.eligibility.segments:
        return "eligible: everyone"
    hits = [s for s in offer.eligibility.segments if s in member]
    if not hits:
        return None
    return "eligible: segment " + ", ".join(f"{names[s]} ({s})" for s in hits)


def _reason(
    why: str, offer: OfferSpec, p: float, accepted: int, shown: int, interest: tuple[float, str | None, int],
    later: float, unprofiled: str | None, skipped: list[str], by: Channel | None, score: float,
) -> str:
    boost, topic, n = interest
    prior = f"prior {PRIOR_A:g}/{PRIOR_A + PRIOR_B:g}"
    parts = [why, f"propensity {p:.3f} ({accepted}/{shown} accepted, {prior})"]
    if topic:
        parts.append(f"interest in {topic} x{boost:.2f} ({n} in {INTEREST_DAYS} days)")
    if later != 1.0:
        parts.append(f"answered LATER x{later:g}")
    if unprofiled:
        parts.append(f"{unprofiled}: interest not used")
    if skipped:
        parts.append(f"no marketing consent by {', '.join(skipped)}: offered by {by.value if by else ''}")
    parts.append(f"score {offer.priority:g} x {p:.3f} x {offer.value:g}"
                 f"{f' x {boost:.2f}' if boost != 1 else ''}{f' x {later:g}' if later != 1 else ''}"
                 f" = {score:.2f}")
    return "; ".join(parts)


def rank(
    state: CustomerState,
    catalog: Catalog,
    channel: Channel | None,
    now: datetime,
    learning: Learning,
    limit: int,
    customer_id: str,
) -> list[NextBestAction]:
    if limit <= 0:
        return []
    if channel is not None and withheld(state, MARKETING, channel.value):
        return []  # no marketing consent in this channel: no offers in it
    unprofiled = withheld(state, PROFILING, channel.value if channel else None)
    member = {s.id for s in segments_of(state, catalog.segments, now)}
    names = {s.id: s.name for s in catalog.segments}
    candidates: list[_Candidate] = []
    for offer in catalog.offers:
        why = _eligible_by(offer, member, names)
        if why is None:
            continue
        if channel is not None and channel not in offer.channels:
            continue
        skipped: list[str] = []
        by = channel
        if channel is None:  # any channel: the first the offer may go by that consent allows
            for c in offer.channels:
                if withheld(state, MARKETING, c.value):
                    skipped.append(c.value)
                    continue
                by = c
                break
            if by is None:
                continue  # no channel of the offer may carry marketing to this customer
        st = state.offers.get(offer.id)
        if fatigued(st, offer, now):
            continue
        if st is not None and (st.removed or (st.suppressed_until and st.suppressed_until > _aware(now))):
            continue
        shown, accepted = learning.get(offer.id, (0, 0))
        p = propensity(learning, offer.id)
        boost, topic, n = interest_boost(state, offer, now) if unprofiled is None else (1.0, None, 0)
        answered_later = st is not None and st.last_response is PropositionResponse.LATER
        later = offer.later_factor if answered_later else 1.0
        score = offer.priority * p * offer.value * boost * later
        reason = functools.partial(
            _reason, why, offer, p, accepted, shown, (boost, topic, n), later, unprofiled, skipped, by, score
        )
        candidates.append(_Candidate(offer, by or offer.channels[0], score, reason))
    candidates.sort(key=lambda c: (-c.score, c.offer.id))
    top = candidates[:limit]
    dec = decision_id(customer_id, channel, state.version, catalog.version, [c.offer.id for c in top])
    return [
        NextBestAction(
            offer_id=c.offer.id,
            title=c.offer.title,
            channel=c.channel,
            priority=c.offer.priority,
            score=c.score,
            reason=c.reason(),
            decision_id=dec,
        )
        for c in top
    ]


def offer_history(state: CustomerState) -> list[dict[str, Any]]:
    """The offerHistory of a profile, by offer id."""
    return [
        {
            "offerId": offer_id,
            "shown": st.shown,
            "accepted": st.accepted,
            "rejected": st.rejected,
            "later": st.later,
            "lastShownAt": st.last_shown_at,
        }
        for offer_id, st in sorted(state.offers.items())
    ]


__all__ = [
    "INTEREST_CAP",
    "INTEREST_DAYS",
    "INTEREST_STEP",
    "MAX_REQUESTS",
    "PRIOR_A",
    "PRIOR_B",
    "CustomerState",
    "Learning",
    "OfferState",
    "RequestState",
    "apply_attributes",
    "apply_consent",
    "apply_event",
    "apply_in_place",
    "apply_request_status",
    "attributes_in_place",
    "consent_in_place",
    "count_requests",
    "decision_id",
    "fatigued",
    "interest_boost",
    "matches",
    "offer_history",
    "propensity",
    "rank",
    "request_status_in_place",
    "segments_of",
    "withheld",
]
