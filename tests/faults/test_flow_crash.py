"""A batch flow's run cut short resumes without loss or doubles: the destination failing in the middle of
a run, the hub closing in the middle of one, a process killed in the middle of one (its lease ends). Each
event is counted where CM applies it (tests.e2e.test_flows.Journal). Runs on both stacks."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import update

from hub.events import utcnow
from hub.messaging.scheduler import FlowBusy
from hub.store.tables import flow_cursors
from tests.e2e import test_flows
from tests.e2e.test_flows import FLOW, _flow, _person, _record, api_of, history

# The fixtures of tests/e2e/test_flows.py: hubs driven by hand on this test's stack, CM's effects counted.
flow_hubs, journal = test_flows.flow_hubs, test_flows.journal


async def test_a_run_cut_by_a_failing_destination_resumes_at_the_next_run(flow_hubs, journal):
    clock = flow_hubs.clock
    hub = await flow_hubs.start("daily")
    await journal.create(hub.engine)
    async with api_of(hub) as client:
        contact, customer, offer = await _person(client, "failing@example.com")
        ids = await _record(client, contact, offer, calls=3, per_call=5)
        await hub.settle()

        # CM fails on the eighth event, in its pack and on its own: the run applies the rest.
        victim = ids[7]
        journal.failing = {victim}
        clock.at(1)
        delivered = (await hub.scheduler.run_due())[FLOW]
        assert 0 < delivered < len(ids), "the packs without the failing event (how they were packed varies)"
        assert await journal.applied(hub.engine) == Counter(i for i in ids if i != victim), "and in its pack"
        listed = await _flow(client)
        assert listed["pending"] == 1, "the failing event's pack waits for the next run"
        assert listed["lastRunAt"] is not None

        # CM is well again: the next day's run applies what was left, and nothing twice.
        journal.failing = set()
        await asyncio.sleep(0.3)  # the failed message's back-off (HUB_RETRY_BACKOFF_SECONDS) is over
        clock.at(2)
        assert (await hub.scheduler.run_due())[FLOW] == len(ids) - delivered, "the failing event's pack"
        assert await journal.applied(hub.engine) == Counter(ids), "each event applied once"
        hub.cache.invalidate([customer], ["cm"])
        assert (await history(client, customer))["shown"] == len(ids)
        assert (await _flow(client))["pending"] == 0
    assert await hub.bus.dead_letters() == []


async def test_a_run_cut_by_the_hub_closing_resumes_at_the_next_start(flow_hubs, journal):
    clock = flow_hubs.clock
    # Small packs, each applied on its own (one transaction each): the run gets partway.
    small = {"relay_batch": 4, "consume_batch": 1}
    first = await flow_hubs.start("daily", **small)
    await journal.create(first.engine)
    async with api_of(first) as client:
        contact, customer, offer = await _person(client, "closing@example.com")
        ids = await _record(client, contact, offer, calls=3, per_call=4)
        await first.settle()

    # Tomorrow's run starts on the hub's own scheduler; it applies one pack and is cut in the second.
    first.gate, first.passes = asyncio.Event(), 1
    clock.at(1)
    first.scheduler.start()
    await asyncio.wait_for(first.entered.wait(), 10)
    assert await journal.applied(first.engine) == Counter(ids[:4])
    await asyncio.wait_for(first.close(), 20)
    assert first.close_overruns == []

    # The next start runs it again, though its due time was taken: what the cut run applied is not
    # applied again, the rest is.
    second = await flow_hubs.start(**small)
    assert (await second.scheduler.run_due())[FLOW] == 8
    assert FLOW not in await second.scheduler.run_due()
    assert await journal.applied(second.engine) == Counter(ids), "each event applied once"
    async with api_of(second) as client:
        assert (await history(client, customer))["shown"] == len(ids)
        listed = await _flow(client)
        assert listed["pending"] == 0 and listed["lastRunAt"] is not None


async def test_a_run_left_by_a_killed_process_is_taken_up_when_its_lease_ends(flow_hubs, journal):
    clock = flow_hubs.clock
    hub = await flow_hubs.start("daily")
    await journal.create(hub.engine)
    async with api_of(hub) as client:
        contact, customer, offer = await _person(client, "killed@example.com")
        ids = await _record(client, contact, offer, calls=2, per_call=3)
        await hub.settle()

        # What a process killed in the middle of tomorrow's run leaves behind: the flow's lease, which it
        # no longer renews.
        async with hub.engine.begin() as tx:
            await tx.execute(
                update(flow_cursors)
                .where(flow_cursors.c.flow == FLOW)
                .values(lease_owner="killed", lease_until=utcnow() + timedelta(seconds=hub.scheduler.lease_seconds))
            )
        clock.at(1)
        assert FLOW not in await hub.scheduler.run_due(), "while the lease lasts, that run may still be going"
        with pytest.raises(FlowBusy):
            await hub.scheduler.deliver(hub.flow(FLOW))
        assert not await journal.applied(hub.engine)

        # The lease ends (the scheduler's next rounds come at least once a minute): the run is taken up.
        later = utcnow() + timedelta(seconds=hub.scheduler.lease_seconds + 1)
        hub.scheduler._wall = lambda: later
        assert (await hub.scheduler.run_due())[FLOW] == len(ids)
        assert FLOW not in await hub.scheduler.run_due()
        assert await journal.applied(hub.engine) == Counter(ids)
        hub.cache.invalidate([customer], ["cm"])
        assert (await history(client, customer))["shown"] == len(ids)
