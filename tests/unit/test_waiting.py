"""A stop that arrives together with a wake-up must stop the task (Python 3.11's wait_for loses it)."""

from __future__ import annotations

import asyncio

import pytest

from hub.config import Settings
from hub.messaging.bus.embedded import EmbeddedBus
from hub.messaging.outbox import OutboxRelay
from hub.waiting import wait_event, within


async def _loop(event: asyncio.Event) -> None:
    while True:
        await wait_event(event, 0.5)
        event.clear()


async def test_cancel_in_the_same_tick_as_a_wake_up_stops_the_waiter():
    for _ in range(50):
        event = asyncio.Event()
        task = asyncio.create_task(_loop(event))
        await asyncio.sleep(0)
        event.set()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=1)
        assert done, "the cancellation was swallowed"
        assert task.cancelled()


async def test_wait_event_reports_set_or_timed_out():
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 0.01) is True


async def test_within_raises_past_its_deadline():
    with pytest.raises(TimeoutError):
        await within(asyncio.Event().wait(), 0.01)


async def test_outbox_relay_stops_when_woken_at_the_moment_it_is_stopped(store_engine):
    relay = OutboxRelay(store_engine, EmbeddedBus(store_engine, Settings()), idle=0.5)
    for _ in range(20):
        relay.start()
        await asyncio.sleep(0.01)  # idle, waiting for a wake-up
        relay.wake()
        stopping = asyncio.create_task(relay.stop())
        done, _ = await asyncio.wait({stopping}, timeout=2)  # not wait_for: it has the same bug
        assert done, "the relay did not stop: its cancellation was swallowed"
