"""The CM decision policy: pure functions, so every rule is checked with a fixed `now`."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta, timezone
from itertools import count

import pytest

from hub.events import RequestStatusData
from hub.model import Channel, ContactEvent, ContactEventType, PropositionResponse, RequestKind, RequestStatus
from hub_adapters.cm.catalog import Catalog, parse_catalog
from hub_adapters.cm.policy import (
    MAX_REQUESTS,
    CustomerState,
    RequestState,
    apply_attributes,
    apply_event,
    apply_request_status,
    decision_id,
    propensity,
    rank,
    request_status_in_place,
    segments_of,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

SEGMENTS = """
segments:
  - id: gold
    name: Gold tier
    when: {field: tier, eq: gold}
  - id: adult
    name: Adults
    when: {field: age, gte: 18}
  - id: mortgage-prospect
    name: Mortgage prospect
    when:
      count: {event: INTEREST_SHOWN, topic: mortgage, days: 30}
      gte: 2
  - id: clicker
    name: Clicker
    when:
      all:
        - count: {event: BANNER_CLICK, days: 7}
          gte: 2
        - not: {field: tier, in: [gold]}
  - id: open-complaint
    name: Open complaint
    when:
      requests: {kind: COMPLAINT, status: [OPEN, IN_PROGRESS, WAITING_FOR_CUSTOMER]}
      gte: 1
  - id: recent-quotes
    name: Two quotes settled this week
    when:
      requests: {kind: [QUOTE], status: [COMPLETED, REJECTED], days: 7}
      gte: 2
  - id: no-requests
    name: No requests
    when:
      requests: {}
      eq: 0
"""

OFFERS = """
offers:
  - id: savings
    title: Savings
    channels: [WEBSITE, EMAIL, SHOP]
    topics: [savings]
    value: 100
    priority: 1
    fatigue: {max_shown: 3, days: 14}
    suppression_days: 30
    later_factor: 0.5
  - id: card
    title: Gold card
    channels: [WEBSITE, EMAIL]
    topics: [card]
    value: 100
    priority: 1
    eligibility: {segments: [gold]}
    fatigue: {max_shown: 2, days: 7}
    suppression_days: 10
  - id: mortgage
    title: Mortgage
    channels: [WEBSITE, CALLCENTER]
    topics: [mortgage]
    value: 100
    priority: 1
    eligibility: {segments: [adult], exclude: [gold]}
    fatigue: {max_shown: 3, days: 14}
    suppression_days: 30
"""


@pytest.fixture
def catalog() -> Catalog:
    return parse_catalog("offers.yaml", "segments.yaml", offers_text=OFFERS, segments_text=SEGMENTS)


_ids = count(1)


def ev(kind: ContactEventType, at: datetime = NOW, **kw) -> ContactEvent:
    return ContactEvent(
        id=f"e{next(_ids)}", type=kind, customer_id="c1", contact_id="k1",
        channel=kw.pop("channel", Channel.WEBSITE), occurred_at=at, **kw,
    )


def shown(offer: str, at: datetime = NOW, **kw) -> ContactEvent:
    return ev(ContactEventType.PROPOSITION_SHOWN, at, offer_id=offer, **kw)


def response(offer: str, r: PropositionResponse, at: datetime = NOW) -> ContactEvent:
    return ev(ContactEventType.PROPOSITION_RESPONSE, at, offer_id=offer, response=r)


def apply_all(state: CustomerState, events, catalog: Catalog, now: datetime = NOW) -> CustomerState:
    for e in events:
        state = apply_event(state, e, now, catalog)
    return state


def ids(state, catalog, channel=None, now=NOW, learning=None, limit=10):
    return [n.offer_id for n in rank(state, catalog, channel, now, learning or {}, limit, "c1")]


def test_eligibility_by_segment_and_exclusion(catalog):
    nobody = CustomerState()
    assert ids(nobody, catalog) == ["savings"]  # everyone's offer only
    adult = apply_attributes(nobody, {"age": 40, "tier": "silver"})
    assert sorted(ids(adult, catalog)) == ["mortgage", "savings"]
    gold = apply_attributes(adult, {"tier": "gold"})
    assert sorted(ids(gold, catalog)) == ["card", "savings"]  # gold: card in, mortgage excluded


def test_eligibility_by_channel(catalog):
    gold = apply_attributes(CustomerState(), {"age": 40, "tier": "gold"})
    assert sorted(ids(gold, catalog, Channel.EMAIL)) == ["card", "savings"]
    assert ids(gold, catalog, Channel.SHOP) == ["savings"]
    assert ids(gold, catalog, Channel.CALLCENTER) == []
    nbas = rank(gold, catalog, None, NOW, {}, 10, "c1")
    assert {n.offer_id: n.channel for n in nbas}["card"] is Channel.WEBSITE  # first declared channel
    assert all(n.channel is Channel.SHOP for n in rank(gold, catalog, Channel.SHOP, NOW, {}, 10, "c1"))


def test_fatigue_cap_within_window_then_back(catalog):
    s = apply_all(CustomerState(), [shown("savings", NOW - timedelta(days=2)),
                                    shown("savings", NOW - timedelta(days=1))], catalog)
    assert "savings" in ids(s, catalog)  # 2 of 3
    s = apply_event(s, shown("savings", NOW - timedelta(hours=1)), NOW, catalog)
    assert "savings" not in ids(s, catalog)  # 3 shows in 14 days, no response
    # The oldest show leaves the 14-day window: back.
    later = NOW + timedelta(days=12, hours=1)
    assert "savings" in ids(s, catalog, now=later)
    assert "savings" not in ids(s, catalog, now=NOW + timedelta(days=11))


def test_fatigue_reset_by_a_response(catalog):
    s = apply_all(CustomerState(), [shown("savings", NOW - timedelta(hours=h)) for h in (3, 2, 1)], catalog)
    assert "savings" not in ids(s, catalog)
    s = apply_event(s, response("savings", PropositionResponse.LATER), NOW, catalog)
    assert "savings" in ids(s, catalog)
    s = apply_all(s, [shown("savings", NOW + timedelta(minutes=m)) for m in (1, 2)], catalog)
    assert "savings" in ids(s, catalog, now=NOW + timedelta(minutes=3))  # only 2 since the response


def test_rejected_is_suppressed_for_its_days_then_back(catalog):
    s = apply_event(CustomerState(), response("savings", PropositionResponse.REJECTED), NOW, catalog)
    assert s.offers["savings"].suppressed_until == NOW + timedelta(days=30)
    assert "savings" not in ids(s, catalog, now=NOW + timedelta(days=29))
    assert "savings" in ids(s, catalog, now=NOW + timedelta(days=30, seconds=1))


def test_accepted_is_removed_for_good(catalog):
    s = apply_event(CustomerState(), response("savings", PropositionResponse.ACCEPTED), NOW, catalog)
    assert s.offers["savings"].removed
    assert "savings" not in ids(s, catalog)
    assert "savings" not in ids(s, catalog, now=NOW + timedelta(days=3000))


def test_later_keeps_the_offer_but_lowers_it(catalog):
    s = apply_attributes(CustomerState(), {"age": 30})
    before = {n.offer_id: n.score for n in rank(s, catalog, None, NOW, {}, 10, "c1")}
    assert before["savings"] == before["mortgage"]
    assert ids(s, catalog) == ["mortgage", "savings"]  # a tie: by offer id
    s = apply_event(s, response("mortgage", PropositionResponse.LATER), NOW, catalog)
    after = {n.offer_id: n for n in rank(s, catalog, None, NOW, {}, 10, "c1")}
    assert after["mortgage"].score == pytest.approx(before["mortgage"] * 0.5)
    assert ids(s, catalog) == ["savings", "mortgage"]
    assert "LATER" in after["mortgage"].reason
    assert s.offers["mortgage"].later == 1


def test_interest_raises_the_topics_offers_with_a_bounded_boost(catalog):
    s = apply_attributes(CustomerState(), {"age": 30})
    base = {n.offer_id: n.score for n in rank(s, catalog, None, NOW, {}, 10, "c1")}
    s = apply_event(s, ev(ContactEventType.INTEREST_SHOWN, topic="savings"), NOW, catalog)
    one = {n.offer_id: n for n in rank(s, catalog, None, NOW, {}, 10, "c1")}
    assert one["savings"].score == pytest.approx(base["savings"] * 1.25)
    assert one["mortgage"].score == pytest.approx(base["mortgage"])
    assert next(iter(one)) == "savings"  # now first
    assert "interest in savings" in one["savings"].reason
    # A banner click on an offer counts for the offer's topics; the boost stops at x2.
    clicks = [ev(ContactEventType.BANNER_CLICK, offer_id="savings") for _ in range(10)]
    many = apply_all(s, clicks, catalog)
    assert many.interest("savings", NOW) == 11
    top = rank(many, catalog, None, NOW, {}, 1, "c1")[0]
    assert top.score == pytest.approx(base["savings"] * 2.0)
    # Interest older than 30 days no longer boosts.
    old = apply_all(apply_attributes(CustomerState(), {"age": 30}),
                    [ev(ContactEventType.INTEREST_SHOWN, NOW - timedelta(days=31), topic="savings")], catalog)
    assert {n.offer_id: n.score for n in rank(old, catalog, None, NOW, {}, 10, "c1")} == base


def test_propensity_learning_changes_the_ranking(catalog):
    s = apply_attributes(CustomerState(), {"age": 30})
    assert propensity({}, "x") == pytest.approx(0.1)  # the Beta(1, 9) prior
    assert propensity({"x": (10, 5)}, "x") == pytest.approx(6 / 20)
    assert ids(s, catalog) == ["mortgage", "savings"]
    learning = {"savings": (100, 30), "mortgage": (100, 2)}
    assert ids(s, catalog, learning=learning) == ["savings", "mortgage"]
    top = rank(s, catalog, None, NOW, learning, 1, "c1")[0]
    assert top.score == pytest.approx(1 * (31 / 110) * 100)
    assert "30/100 accepted" in top.reason


def test_deterministic_tie_break_and_limit(catalog):
    s = apply_attributes(CustomerState(), {"age": 30, "tier": "silver"})
    first = rank(s, catalog, Channel.WEBSITE, NOW, {}, 10, "c1")
    assert [n.offer_id for n in first] == ["mortgage", "savings"]
    assert first[0].score == first[1].score
    assert rank(s, catalog, Channel.WEBSITE, NOW, {}, 10, "c1") == first
    assert [n.offer_id for n in rank(s, catalog, Channel.WEBSITE, NOW, {}, 1, "c1")] == ["mortgage"]
    assert rank(s, catalog, Channel.WEBSITE, NOW, {}, 0, "c1") == []


def test_windowed_segment_rules(catalog):
    def segs(state, now=NOW):
        return {s.id for s in segments_of(state, catalog.segments, now)}

    s = apply_event(CustomerState(), ev(ContactEventType.INTEREST_SHOWN, NOW - timedelta(days=20),
                                        topic="mortgage"), NOW, catalog)
    assert "mortgage-prospect" not in segs(s)
    s = apply_event(s, ev(ContactEventType.INTEREST_SHOWN, NOW, topic="mortgage"), NOW, catalog)
    assert "mortgage-prospect" in segs(s)
    # Day 20 ago leaves the 30-day window 10 days later.
    assert "mortgage-prospect" in segs(s, NOW + timedelta(days=9))
    assert "mortgage-prospect" not in segs(s, NOW + timedelta(days=10))
    # Another topic does not count.
    other = apply_all(CustomerState(), [ev(ContactEventType.INTEREST_SHOWN, topic="savings") for _ in "ab"],
                      catalog)
    assert "mortgage-prospect" not in segs(other)
    # all + not: two clicks in 7 days, unless gold.
    clicks = apply_all(CustomerState(), [ev(ContactEventType.BANNER_CLICK, NOW - timedelta(days=d))
                                         for d in (1, 6)], catalog)
    assert "clicker" in segs(clicks)
    assert "clicker" not in segs(clicks, NOW + timedelta(days=1))
    assert "clicker" not in segs(apply_attributes(clicks, {"tier": "gold"}))


def test_counters_are_daily_buckets_and_pruned(catalog):
    s = apply_all(CustomerState(), [ev(ContactEventType.BANNER_CLICK, NOW, topic="travel"),
                                    ev(ContactEventType.BANNER_CLICK, NOW, topic="travel")], catalog)
    assert s.counters["BANNER_CLICK:travel"] == {"2026-03-10": 2}
    assert s.counters["BANNER_CLICK"] == {"2026-03-10": 2}
    later = NOW + timedelta(days=catalog.retention_days + 1)
    s = apply_event(s, ev(ContactEventType.INTEREST_SHOWN, later, topic="x"), later, catalog)
    assert "BANNER_CLICK" not in s.counters
    assert s.counters["INTEREST_SHOWN:x"] == {later.date().isoformat(): 1}


def test_reasons_and_decision_ids_present_and_stable(catalog):
    s = apply_attributes(CustomerState(), {"age": 30, "tier": "gold"})
    nbas = rank(s, catalog, Channel.WEBSITE, NOW, {}, 10, "c1")
    assert nbas and all(n.decision_id.startswith("dec_") for n in nbas)
    assert len({n.decision_id for n in nbas}) == 1  # one decision
    card = next(n for n in nbas if n.offer_id == "card")
    assert "segment Gold tier (gold)" in card.reason and "propensity 0.100" in card.reason
    assert "everyone" in next(n for n in nbas if n.offer_id == "savings").reason
    assert card.priority == 1 and card.score == pytest.approx(10.0)
    again = rank(CustomerState.from_dict(s.to_dict()), catalog, Channel.WEBSITE, NOW, {}, 10, "c1")
    assert [n.decision_id for n in again] == [n.decision_id for n in nbas]
    assert rank(s, catalog, Channel.WEBSITE, NOW, {}, 10, "c2")[0].decision_id != nbas[0].decision_id
    assert rank(s, catalog, Channel.EMAIL, NOW, {}, 10, "c1")[0].decision_id != nbas[0].decision_id
    changed = apply_event(s, ev(ContactEventType.BANNER_CLICK), NOW, catalog)
    assert rank(changed, catalog, Channel.WEBSITE, NOW, {}, 10, "c1")[0].decision_id != nbas[0].decision_id
    assert decision_id("c1", None, 3, "v", ["a"]) == decision_id("c1", None, 3, "v", ["a"])
    # A later event carrying the decision id is recorded on the offer.
    s2 = apply_event(s, shown("card", decision_id=nbas[0].decision_id), NOW, catalog)
    assert s2.offers["card"].last_decision_id == nbas[0].decision_id


def test_apply_event_does_not_mutate_its_input(catalog):
    s = apply_all(CustomerState(), [shown("savings"), ev(ContactEventType.INTEREST_SHOWN, topic="t")],
                  catalog)
    s = apply_attributes(s, {"age": 20})
    snapshot = copy.deepcopy(s.to_dict())
    for e in (shown("savings"), response("savings", PropositionResponse.REJECTED),
              response("card", PropositionResponse.ACCEPTED), ev(ContactEventType.BANNER_CLICK, topic="t")):
        new = apply_event(s, e, NOW, catalog)
        assert new is not s and new.version == s.version + 1
    apply_attributes(s, {"age": None, "tier": "gold"})
    assert s.to_dict() == snapshot


def test_same_event_is_applied_once_and_state_round_trips(catalog):
    e = shown("savings")
    s = apply_event(CustomerState(), e, NOW, catalog)
    assert apply_event(s, e, NOW, catalog) is s
    s = apply_event(s, response("savings", PropositionResponse.LATER), NOW, catalog)
    back = CustomerState.from_dict(s.to_dict())
    assert back == s
    assert back.offers["savings"].last_shown_at == NOW


# --- request.status --------------------------------------------------------------------------------


def status(request_id: str, st: RequestStatus, at: datetime = NOW,
           kind: RequestKind = RequestKind.COMPLAINT) -> RequestStatusData:
    return RequestStatusData(requestId=request_id, customerId="c1", kind=kind, status=st, at=at, note=None)


def kept(state: CustomerState) -> dict[str, tuple[str, str, datetime]]:
    return {rid: (r.kind.value, r.status.value, r.at) for rid, r in state.requests.items()}


def test_request_status_newest_wins_and_an_older_one_is_ignored():
    s0 = CustomerState()
    s1 = apply_request_status(s0, status("r1", RequestStatus.OPEN, NOW - timedelta(days=2)))
    assert s0.requests == {} and s0.version == 0  # the input is not changed
    assert kept(s1) == {"r1": ("COMPLAINT", "OPEN", NOW - timedelta(days=2))} and s1.version == 1
    s2 = apply_request_status(s1, status("r1", RequestStatus.COMPLETED, NOW))
    assert kept(s2)["r1"] == ("COMPLAINT", "COMPLETED", NOW) and s2.version == 2
    # Yesterday's IN_PROGRESS arrives after today's COMPLETED (daily batches, out of order): ignored.
    s3 = apply_request_status(s2, status("r1", RequestStatus.IN_PROGRESS, NOW - timedelta(days=1)))
    assert kept(s3) == kept(s2) and s3.version == 2
    # The same status again (a redelivery): nothing changes, no new version.
    s4 = apply_request_status(s3, status("r1", RequestStatus.COMPLETED, NOW))
    assert kept(s4) == kept(s2) and s4.version == 2
    # The same moment in another zone is the same moment.
    other_zone = NOW.astimezone(timezone(timedelta(hours=2)))
    assert apply_request_status(s4, status("r1", RequestStatus.COMPLETED, other_zone)).version == 2
    # At the same `at`, the status later in a request's life wins, whichever arrives first.
    s5 = apply_request_status(s4, status("r1", RequestStatus.REJECTED, NOW))
    assert kept(s5)["r1"][1] == "REJECTED" and s5.version == 3
    assert apply_request_status(s5, status("r1", RequestStatus.COMPLETED, NOW)).version == 3
    assert apply_request_status(s5, status("r1", RequestStatus.CANCELLED, NOW)).requests["r1"].status \
        is RequestStatus.CANCELLED
    # Another request of the customer is kept beside it.
    s6 = apply_request_status(s5, status("q1", RequestStatus.OPEN, NOW, RequestKind.QUOTE))
    assert set(kept(s6)) == {"r1", "q1"} and s6.version == 4


def test_request_status_in_place_says_whether_it_changed():
    s = CustomerState()
    assert request_status_in_place(s, status("r1", RequestStatus.OPEN, NOW)) is True
    assert request_status_in_place(s, status("r1", RequestStatus.OPEN, NOW)) is False
    assert request_status_in_place(s, status("r1", RequestStatus.CANCELLED, NOW - timedelta(seconds=1))) is False
    assert s.version == 1 and s.requests["r1"].status is RequestStatus.OPEN


def test_at_most_the_newest_requests_are_kept():
    s = CustomerState()
    for i in range(MAX_REQUESTS + 5):  # r0 oldest ... r54 newest
        s = apply_request_status(s, status(f"r{i}", RequestStatus.OPEN, NOW - timedelta(hours=100 - i)))
    assert len(s.requests) == MAX_REQUESTS == 50
    assert set(s.requests) == {f"r{i}" for i in range(5, 55)}
    assert s.version == 55
    # A request older than every one kept would be dropped at once: not taken in, no new version.
    old = apply_request_status(s, status("ancient", RequestStatus.OPEN, NOW - timedelta(days=30)))
    assert "ancient" not in old.requests and old.version == s.version
    # A dropped request's old status arriving again does not bring it back.
    again = apply_request_status(s, status("r0", RequestStatus.COMPLETED, NOW - timedelta(hours=100)))
    assert "r0" not in again.requests and again.version == s.version
    # A new status for a kept request moves it up: nothing is dropped.
    moved = apply_request_status(s, status("r5", RequestStatus.COMPLETED, NOW))
    assert len(moved.requests) == 50 and "r5" in moved.requests and moved.version == s.version + 1
    # A new request drops the oldest one (r5 until it moved, else r6).
    newer = apply_request_status(s, status("new", RequestStatus.OPEN, NOW))
    assert len(newer.requests) == 50 and "new" in newer.requests and "r5" not in newer.requests
    newer = apply_request_status(moved, status("new", RequestStatus.OPEN, NOW))
    assert "r5" in newer.requests and "r6" not in newer.requests


def test_the_requests_kept_do_not_depend_on_arrival_order():
    """Two statuses for each of 70 requests, shuffled: the same 50 requests with their newest statuses
    as when they arrive in time order."""
    statuses = []
    for i in range(70):
        opened = NOW - timedelta(days=10, minutes=7 * i)
        statuses.append(status(f"r{i:02}", RequestStatus.OPEN, opened))
        statuses.append(status(f"r{i:02}", RequestStatus.COMPLETED, opened + timedelta(hours=i % 13)))
    in_order = CustomerState()
    for st in sorted(statuses, key=lambda x: x.at):
        request_status_in_place(in_order, st)
    assert len(in_order.requests) == 50
    assert all(r.status is RequestStatus.COMPLETED for r in in_order.requests.values())
    rng = random.Random(7)
    for _ in range(20):
        shuffled = statuses[:]
        rng.shuffle(shuffled)
        s = CustomerState()
        for st in shuffled:
            request_status_in_place(s, st)
        assert kept(s) == kept(in_order)


def test_requests_round_trip_through_the_stored_state():
    s = apply_request_status(CustomerState(), status("r1", RequestStatus.WAITING_FOR_CUSTOMER, NOW))
    stored = s.to_dict()
    assert stored["requests"] == {"r1": {"kind": "COMPLAINT", "status": "WAITING_FOR_CUSTOMER",
                                         "at": "2026-03-10T12:00:00+00:00"}}
    back = CustomerState.from_dict(stored)
    assert back == s and back.requests["r1"] == RequestState(RequestKind.COMPLAINT,
                                                             RequestStatus.WAITING_FOR_CUSTOMER, NOW)
    # A state stored before requests existed reads as none.
    assert CustomerState.from_dict({k: v for k, v in stored.items() if k != "requests"}).requests == {}


def test_requests_segment_rules(catalog):
    def segs(state, now=NOW):
        return {s.id for s in segments_of(state, catalog.segments, now)}

    nobody = CustomerState()
    assert "no-requests" in segs(nobody) and "open-complaint" not in segs(nobody)
    s = apply_request_status(nobody, status("r1", RequestStatus.OPEN, NOW - timedelta(days=3)))
    assert "open-complaint" in segs(s) and "no-requests" not in segs(s)
    s = apply_request_status(s, status("r1", RequestStatus.WAITING_FOR_CUSTOMER, NOW - timedelta(days=1)))
    assert "open-complaint" in segs(s)
    s = apply_request_status(s, status("r1", RequestStatus.COMPLETED, NOW))
    assert "open-complaint" not in segs(s)
    # A quote in progress is no complaint.
    quote = apply_request_status(nobody, status("q1", RequestStatus.IN_PROGRESS, NOW - timedelta(days=8),
                                                RequestKind.QUOTE))
    assert "open-complaint" not in segs(quote)
    # Counted within the window: two quotes settled in the last 7 days (today included).
    q = apply_request_status(quote, status("q1", RequestStatus.COMPLETED, NOW - timedelta(days=6), RequestKind.QUOTE))
    assert "recent-quotes" not in segs(q)  # one
    q = apply_request_status(q, status("q2", RequestStatus.REJECTED, NOW - timedelta(days=2), RequestKind.QUOTE))
    assert "recent-quotes" in segs(q)
    assert "recent-quotes" not in segs(q, NOW + timedelta(days=1))  # q1 left the window
