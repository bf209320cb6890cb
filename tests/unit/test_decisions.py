"""The decision cache: CM is asked once per customer and slot while nothing changed, never for an answer
with pending events, and a change of the customer's CM data (even one that lands while CM answers)
forgets what was cached. The NBA budget: past it the mapping's default actions at once, marked fallback
and never kept; CM's late decision is kept and pushed."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from datetime import UTC, datetime

import pytest

from hub.config import SHIPPED_MAPPINGS, Settings
from hub.config.loader import MappingError
from hub.config.mapping import FallbackAction
from hub.core import reads
from hub.core.decisions import Decisions
from hub.core.errors import SystemUnavailable
from hub.model import Channel, ContactEvent, ContactEventType, DecisionRequest, NextBestAction, Offer
from hub.registry import load_mapping


class CountingCM:
    """A decision engine on the port, answering from a version per customer, counting its calls."""

    def __init__(self) -> None:
        self.calls: list[list[DecisionRequest]] = []
        self.version: dict[str, int] = {}
        self.gate: asyncio.Event | None = None

    async def offers(self) -> list[Offer]:
        return []

    async def decide(self, requests, pending=()):
        self.calls.append(list(requests))
        answer = [[_nba(r, self.version.get(r.customer_id, 0) + len(pending))] for r in requests]
        if self.gate is not None:
            await self.gate.wait()
        return answer


def _nba(r: DecisionRequest, version: int) -> NextBestAction:
    return NextBestAction("offer", "Offer", r.channel or Channel.WEBSITE, 1.0, 1.0, "r", f"dec_{version}")


A = DecisionRequest("cus_a", Channel.WEBSITE, 3)
B = DecisionRequest("cus_b", Channel.EMAIL, 3)


async def test_one_call_per_customer_and_slot_until_the_customer_changes():
    cm = CountingCM()
    decisions = Decisions("cm", cm, timeout=5, cache_seconds=60)
    first = await decisions.decide([A, B])
    assert await decisions.decide([A, B]) == first and len(cm.calls) == 1
    assert len(await decisions.decide([A, DecisionRequest("cus_a", Channel.EMAIL, 3)])) == 2
    assert cm.calls[-1] == [DecisionRequest("cus_a", Channel.EMAIL, 3)]  # only the new slot is asked
    cm.version["cus_a"] = 1
    decisions.forget(["cus_a"])
    again = await decisions.decide([A, B])
    assert again[0][0].decision_id == "dec_1" and again[1] == first[1]
    assert cm.calls[-1] == [A]


async def test_pending_events_are_answered_for_the_call_only():
    cm = CountingCM()
    decisions = Decisions("cm", cm, timeout=5, cache_seconds=60)
    event = ContactEvent("ev1", ContactEventType.INTEREST_SHOWN, "cus_a", "con_1", Channel.WEBSITE,
                         datetime.now(UTC), topic="mortgage")
    with_pending = await decisions.decide([A], [event])
    assert with_pending[0][0].decision_id == "dec_1"
    assert (await decisions.decide([A]))[0][0].decision_id == "dec_0"
    assert len(cm.calls) == 2


async def test_a_change_while_cm_answers_is_not_hidden_by_the_cache():
    cm = CountingCM()
    decisions = Decisions("cm", cm, timeout=5, cache_seconds=60)
    cm.gate = asyncio.Event()
    asking = asyncio.create_task(decisions.decide([A]))
    await asyncio.sleep(0.01)
    cm.version["cus_a"] = 1
    decisions.forget(["cus_a"])  # CM applied an event while the old answer was on its way
    cm.gate.set()
    assert (await asking)[0][0].decision_id == "dec_0"
    cm.gate = None
    assert (await decisions.decide([A]))[0][0].decision_id == "dec_1"  # not the stale one


async def test_changes_are_watched_only_while_cm_is_asked():
    """Memory stays flat however many customers change: only questions in flight are watched."""
    cm = CountingCM()
    decisions = Decisions("cm", cm, timeout=5, cache_seconds=60)
    decisions.forget([f"cus_{i}" for i in range(1000)])  # nobody asked: nothing to remember
    assert decisions._watch._epochs == {}
    cm.gate = asyncio.Event()
    asking = asyncio.create_task(decisions.decide([A, A]))
    await asyncio.sleep(0.01)
    assert decisions._watch._epochs == {"cus_a": 0}
    decisions.forget(["cus_a"])
    cm.gate.set()
    await asking
    assert decisions._watch._epochs == {} and decisions._watch._watchers == {}


async def test_no_cache_asks_every_time():
    cm = CountingCM()
    decisions = Decisions("cm", cm, timeout=5, cache_seconds=0)
    await decisions.decide([A])
    await decisions.decide([A])
    assert len(cm.calls) == 2


# --- The NBA budget: default actions past it, CM's late decision kept and pushed --------------------

DEFAULTS = [
    FallbackAction(offer_id="app", title="Get the app", channels=[Channel.WEBSITE, Channel.EMAIL], priority=1),
    FallbackAction(offer_id="savings", title="Savings", priority=3),  # every channel
    FallbackAction(offer_id="call-us", title="Call us", channels=[Channel.CALLCENTER], priority=2),
    FallbackAction(offer_id="news", title="Newsletter", channels=[Channel.EMAIL]),
]
CM_DELAY = 3.0  # far past the budget, well within CM's timeout
BUDGET = 0.05


class SlowCM:
    """A decision engine on the port that takes `delay` seconds, or fails with `fail` (after the delay)."""

    def __init__(self, delay: float = 0.0, fail: BaseException | None = None) -> None:
        self.delay = delay
        self.fail = fail
        self.calls: list[list[DecisionRequest]] = []
        self.cancelled = 0

    async def offers(self) -> list[Offer]:
        return []

    async def decide(self, requests, pending=()):
        self.calls.append(list(requests))
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.fail is not None:
            raise self.fail
        return [[_nba(r, len(self.calls))] for r in requests]


class Pushes:
    """The notify callable: records the customers pushed, and wakes a waiter."""

    def __init__(self) -> None:
        self.ids: list[list[str]] = []
        self.event = asyncio.Event()

    def __call__(self, customer_ids) -> None:
        self.ids.append(list(customer_ids))
        self.event.set()

    async def wait(self, seconds: float = 10.0) -> None:
        async with asyncio.timeout(seconds):
            await self.event.wait()


def budgeted(cm, pushes=None, *, cache_seconds: float = 60, fallback=DEFAULTS, timeout: float = 10):
    return Decisions("cm", cm, timeout=timeout, cache_seconds=cache_seconds, budget=BUDGET,
                     fallback=fallback, notify=pushes)


async def recorded(awaitable):
    """The awaitable's result, and whether the answer it went into may be kept whole (hub.core.reads)."""
    r = reads.Reads()
    token = reads.recording(r)
    try:
        return await awaitable, r.cacheable
    finally:
        reads.stop_recording(token)


async def test_cm_within_the_budget_answers_as_before():
    cm, pushes = SlowCM(delay=0.0), Pushes()
    decisions = budgeted(cm, pushes)
    (answer,), cacheable = await recorded(decisions.decide([A]))
    assert [(n.decision_id, n.fallback) for n in answer] == [("dec_1", False)]
    assert cacheable
    assert await decisions.decide([A]) == [answer] and len(cm.calls) == 1  # cached as before
    assert pushes.ids == []


async def test_past_the_budget_the_default_actions_at_once_and_the_late_decision_is_kept_and_pushed():
    cm, pushes = SlowCM(delay=CM_DELAY), Pushes()
    decisions = budgeted(cm, pushes)
    started = time.monotonic()
    (website, email), cacheable = await recorded(decisions.decide([A, B]))
    assert time.monotonic() - started < CM_DELAY / 3  # did not wait for CM
    assert not cacheable  # the whole answer is never kept with default actions in it

    # Filtered by channel, highest priority first, each marked and saying why.
    assert [n.offer_id for n in website] == ["savings", "app"]
    assert [n.offer_id for n in email] == ["savings", "app", "news"]
    assert all(n.fallback for n in website + email)
    assert [n.decision_id for n in website] == ["fallback:savings", "fallback:app"]
    assert not any(n.decision_id.startswith("dec_") for n in website + email)
    assert {n.channel for n in website} == {Channel.WEBSITE} and {n.channel for n in email} == {Channel.EMAIL}
    assert {n.score for n in website} == {0.0} and [n.priority for n in website] == [3.0, 1.0]
    assert all(f"'cm' did not answer within {BUDGET * 1000:g} ms" in n.reason for n in website)

    # The fallback is not cached: asked again before CM answered, CM is asked again.
    again, _ = await recorded(decisions.decide([A]))
    assert again[0][0].fallback and len(cm.calls) == 2

    # CM's late decision lands in the cache and the customers are pushed.
    await pushes.wait()
    assert sorted(pushes.ids[0]) == ["cus_a", "cus_b"]
    (late_a, late_b), cacheable = await recorded(decisions.decide([A, B]))
    assert late_a[0].decision_id.startswith("dec_") and not late_a[0].fallback
    assert late_b[0].decision_id.startswith("dec_")
    assert cacheable and len(cm.calls) == 2  # from the cache: CM not asked a third time
    await decisions.close()


async def test_a_limit_and_a_channel_less_request_get_the_right_defaults():
    decisions = budgeted(SlowCM(delay=CM_DELAY))
    (one,) = await decisions.decide([DecisionRequest("cus_a", Channel.EMAIL, 1)])
    assert [n.offer_id for n in one] == ["savings"]
    (anywhere,) = await decisions.decide([DecisionRequest("cus_a", None, 10)])
    assert [(n.offer_id, n.channel) for n in anywhere] == [
        ("savings", Channel.WEBSITE), ("call-us", Channel.CALLCENTER), ("app", Channel.WEBSITE),
        ("news", Channel.EMAIL)]
    await decisions.close()


async def test_a_late_decision_for_a_customer_that_changed_meanwhile_is_neither_kept_nor_pushed():
    cm, pushes = SlowCM(delay=0.3), Pushes()
    decisions = budgeted(cm, pushes)
    (first,) = await decisions.decide([A])
    assert first[0].fallback
    decisions.forget(["cus_a"])  # CM applied an event while its old answer was on its way
    await asyncio.sleep(0.6)
    assert pushes.ids == [] and not decisions._late
    cm.delay = 0.0
    (now,) = await decisions.decide([A])
    assert now[0].decision_id == "dec_2" and len(cm.calls) == 2  # asked again, not the stale one


async def test_cm_failing_within_the_budget_is_an_error_and_the_defaults_go_with_it():
    cm, pushes = SlowCM(fail=ConnectionError("cm refused")), Pushes()
    decisions = budgeted(cm, pushes)
    with pytest.raises(SystemUnavailable) as err:
        await decisions.decide([A])
    assert err.value.extensions["system"] == "cm"

    async def defaults_for(request):
        return decisions.fallback(request)

    defaults, cacheable = await recorded(defaults_for(A))
    assert [(n.offer_id, n.decision_id, n.fallback) for n in defaults] == [
        ("savings", "fallback:savings", True), ("app", "fallback:app", True)]
    assert "'cm' is unavailable" in defaults[0].reason
    assert not cacheable
    await asyncio.sleep(0.05)
    assert pushes.ids == []


async def test_a_late_decision_that_fails_pushes_nothing():
    cm, pushes = SlowCM(delay=0.2, fail=ConnectionError("cm went away")), Pushes()
    decisions = budgeted(cm, pushes)
    (first,) = await decisions.decide([A])
    assert first[0].fallback
    while decisions._late:  # the late call runs on until it fails
        await asyncio.sleep(0.02)
    assert pushes.ids == []
    cm.fail, cm.delay = None, 0.0
    assert not (await decisions.decide([A]))[0][0].fallback and len(cm.calls) == 2  # nothing was kept


async def test_a_late_decision_past_cms_own_timeout_pushes_nothing():
    cm, pushes = SlowCM(delay=CM_DELAY), Pushes()
    decisions = budgeted(cm, pushes, timeout=0.2)
    assert (await decisions.decide([A]))[0][0].fallback
    while decisions._late:
        await asyncio.sleep(0.02)
    assert pushes.ids == [] and cm.cancelled == 1  # CM's timeout bounds the late call


async def test_no_defaults_configured_answers_none_and_still_pushes_the_late_decision():
    cm, pushes = SlowCM(delay=0.2), Pushes()
    decisions = budgeted(cm, pushes, fallback=())
    assert await decisions.decide([A]) == [[]]
    await pushes.wait()
    assert pushes.ids == [["cus_a"]]
    assert (await decisions.decide([A]))[0][0].decision_id == "dec_1"


async def test_pending_events_get_the_budget_and_their_late_decision_is_for_that_call_only():
    cm, pushes = SlowCM(delay=0.2), Pushes()
    decisions = budgeted(cm, pushes)
    event = ContactEvent("ev1", ContactEventType.INTEREST_SHOWN, "cus_a", "con_1", Channel.WEBSITE,
                         datetime.now(UTC), topic="mortgage")
    started = time.monotonic()
    (answer,), cacheable = await recorded(decisions.decide([A], [event]))
    assert time.monotonic() - started < 0.15 and answer[0].fallback and not cacheable
    while decisions._late:
        await asyncio.sleep(0.02)
    assert pushes.ids == []  # CM applying the events announces the change; that push decides again
    cm.delay = 0.0
    await decisions.decide([A])
    assert len(cm.calls) == 2  # the pending answer was not cached


async def test_with_the_cache_off_a_late_decision_is_still_handed_to_those_pushed():
    cm, pushes = SlowCM(delay=0.2), Pushes()
    decisions = budgeted(cm, pushes, cache_seconds=0)
    assert (await decisions.decide([A]))[0][0].fallback
    await pushes.wait()
    (pushed,), cacheable = await recorded(decisions.decide([A]))
    assert pushed[0].decision_id == "dec_1" and len(cm.calls) == 1
    assert not cacheable  # cache off: answers are never kept whole


async def test_close_stops_the_late_calls():
    cm, pushes = SlowCM(delay=CM_DELAY), Pushes()
    decisions = budgeted(cm, pushes)
    await decisions.decide([A])
    assert len(decisions._late) == 1
    await decisions.close()
    assert not decisions._late and cm.cancelled == 1 and pushes.ids == []


async def test_a_caller_that_goes_away_within_the_budget_takes_its_cm_call_with_it():
    cm = SlowCM(delay=CM_DELAY)
    decisions = Decisions("cm", cm, timeout=10, cache_seconds=60, budget=5.0, fallback=DEFAULTS)
    asking = asyncio.create_task(decisions.decide([A]))
    await asyncio.sleep(0.05)
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking
    await asyncio.sleep(0)
    assert cm.cancelled == 1 and not decisions._late


# --- The mapping's default actions --------------------------------------------------------------


def test_the_shipped_mapping_has_default_actions_for_every_channel():
    mapping, _ = load_mapping(Settings().mappings_dir)
    fallback = mapping.decisions.fallback
    assert fallback, "the demo deployment ships default actions"
    for channel in Channel:
        assert any(a.fits(channel) for a in fallback), channel


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("      channels: [WEBSITE, EMAIL, SHOP]\n", "      channels: [WEBSITE, FAX]\n",
         "decisions.fallback[1].channels[1]", "Input should be"),
        ("    - offer_id: app-download\n", "    - offer_id: savings-plus\n",
         "decisions.fallback[1].offer_id", "duplicate fallback offer 'savings-plus'"),
        ("      title: Get the mobile banking app\n", "      titel: Get the mobile banking app\n",
         "decisions.fallback[1].titel", "Extra inputs"),
        ("      priority: 1\n", "      priority: high\n", "decisions.fallback[1].priority", "valid number"),
        ("  fallback:\n", "  fallbacks:\n", "decisions.fallbacks", "Extra inputs"),
    ],
)
def test_broken_default_actions_name_file_line_and_field(tmp_path, old, new, field, message):
    mappings = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, mappings)
    path = mappings / "hub.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    line = max(i for i, row in enumerate(path.read_text().splitlines(), 1) if new.strip() in row)
    with pytest.raises(MappingError) as err:
        load_mapping(mappings)
    problems = [str(p) for p in err.value.problems]
    where = re.compile(rf"{re.escape(str(path))}:{line}:\d+: {re.escape(field)}:")
    assert any(where.match(p) and message in p for p in problems), problems
