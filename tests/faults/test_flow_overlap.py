"""A batch flow's run never overlaps another run of the same flow: not the next due time's run when it
outlives its interval, not a second hub process's, not a run by hand (`hub flows run`). Two hubs share
this test's store (and broker): one runs while the other's rounds find the flow taken, and each due time
is run once. Runs on both stacks (on the embedded one the second hub does not consume, as `hub flows
run` next to `hub serve`)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from hub.messaging.scheduler import FlowBusy
from tests.conftest import STACK
from tests.e2e import test_flows
from tests.e2e.test_flows import FLOW, _person, _record, api_of, history

# The fixtures of tests/e2e/test_flows.py: hubs driven by hand on this test's stack, CM's effects counted.
flow_hubs, journal = test_flows.flow_hubs, test_flows.journal


async def test_two_hubs_run_each_due_time_once_and_never_at_once(flow_hubs, journal):
    clock = flow_hubs.clock
    one = await flow_hubs.start("daily")
    other = await flow_hubs.start(consume=STACK == "services")
    await journal.create(one.engine)
    async with api_of(one) as client, api_of(other) as client_of_other:
        contact, customer, offer = await _person(client, "two-hubs@example.com")
        first = await _record(client, contact, offer, calls=2, per_call=4)
        await one.settle()
        await other.settle()

        # Tomorrow's run: one hub takes it, and it lasts.
        one.gate = asyncio.Event()
        clock.at(1)
        running = asyncio.create_task(one.scheduler.run_due())
        await asyncio.wait_for(one.entered.wait(), 10)
        assert FLOW not in await asyncio.wait_for(other.scheduler.run_due(), 10), "taken by the other hub"
        with pytest.raises(FlowBusy):
            await asyncio.wait_for(other.scheduler.deliver(other.flow(FLOW)), 10)

        # More events; the next day's due time comes while the first run still lasts.
        second = await _record(client_of_other, contact, offer, calls=1, per_call=4)
        await one.settle()
        await other.settle()
        clock.at(2)
        assert FLOW not in await asyncio.wait_for(other.scheduler.run_due(), 10), "no overlap"
        assert not await journal.applied(one.engine)

        one.gate.set()
        assert (await asyncio.wait_for(running, 20))[FLOW] >= len(first)
        # The next day's run, once, by either hub: here the other.
        assert (await other.scheduler.run_due()).get(FLOW, 0) >= 1
        assert FLOW not in await one.scheduler.run_due()
        assert FLOW not in await other.scheduler.run_due()
        assert await journal.applied(one.engine) == Counter(first + second), "each event applied once"
        one.cache.invalidate([customer], ["cm"])
        assert (await history(client, customer))["shown"] == len(first + second)


async def test_a_run_longer_than_its_lease_keeps_the_flow(flow_hubs, journal):
    clock = flow_hubs.clock
    one = await flow_hubs.start("daily")
    other = await flow_hubs.start(consume=STACK == "services")
    await journal.create(one.engine)
    one.scheduler.lease_seconds = 0.3  # renewed every 0.1 s while the run lasts
    async with api_of(one) as client:
        contact, _, offer = await _person(client, "long-run@example.com")
        ids = await _record(client, contact, offer, calls=1, per_call=4)
        await one.settle()

        one.gate = asyncio.Event()
        clock.at(1)
        running = asyncio.create_task(one.scheduler.run_due())
        await asyncio.wait_for(one.entered.wait(), 10)
        await asyncio.sleep(1.0)  # three leases long
        assert FLOW not in await other.scheduler.run_due(), "the running hub renews its lease"
        one.gate.set()
        # Deliveries, not effects: two hubs' relays over one SQLite file may both publish an event (the
        # outbox is at least once; hub.messaging.outbox), as the test above allows. Effects once: below.
        assert (await asyncio.wait_for(running, 20))[FLOW] >= len(ids)
        assert FLOW not in await other.scheduler.run_due()
        assert await journal.applied(one.engine) == Counter(ids)
