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


async def test_bounded_answers_at_its_bound_even_when_the_work_shields_its_cleanup():
    """A driver that shields its clean-up on cancel (SQLAlchemy closing an asyncpg connection) must
    not stretch a system's timeout: the caller hears at the bound, the clean-up finishes later."""
    from hub.waiting import bounded

    cleaned = asyncio.Event()

    async def slow_read() -> str:
        try:
            await asyncio.sleep(30)
            return "late"
        except asyncio.CancelledError:
            await asyncio.shield(_cleanup(cleaned))
            raise

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await bounded(slow_read(), 0.05)
    assert loop.time() - started < 2.0  # the clean-up below takes 3 s
    assert not cleaned.is_set()
    assert await bounded(asyncio.sleep(0, result="now"), 1) == "now"


async def _cleanup(done: asyncio.Event) -> None:
    await asyncio.sleep(3)
    done.set()


async def test_cancelling_the_caller_cancels_the_bounded_work():
    from hub.waiting import bounded

    cancelled = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    caller = asyncio.create_task(bounded(work(), 10))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.wait_for(cancelled.wait(), 1)
