"""The decision cache: CM is asked once per customer and slot while nothing changed, never for an answer
with pending events, and a change of the customer's CM data (even one that lands while CM answers)
forgets what was cached."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from hub.core.decisions import Decisions
from hub.model import Channel, ContactEvent, ContactEventType, DecisionRequest, NextBestAction, Offer


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


async def test_no_cache_asks_every_time():
    cm = CountingCM()
    decisions = Decisions("cm", cm, timeout=5, cache_seconds=0)
    await decisions.decide([A])
    await decisions.decide([A])
    assert len(cm.calls) == 2
