"""The outbox relay does not hold new events back while the broker takes its time to confirm earlier
ones: under a constant load RabbitMQ confirms a persistent message only after its batched fsync, a few
hundred milliseconds later. Here the broker's answers (confirms included) come 1 s late, through a
proxy; an event written after the first one must still reach the broker at once, and both end up sent
exactly once, in order."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest
from sqlalchemy import select

from hub.messaging.changes import CUSTOMER_CHANGED, changed
from hub.store.tables import outbox

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

CONFIRM_DELAY = 1.0


async def _sent(hub, event_id: str) -> bool:
    async with hub.engine.connect() as conn:
        row = (await conn.execute(select(outbox.c.sent_at).where(outbox.c.event_id == event_id))).one()
    return row.sent_at is not None


async def test_a_new_event_is_published_while_an_earlier_window_awaits_its_confirm(
    settings_for, start_hub, proxy, rabbitmq_url
):
    hub = await start_hub(settings_for(broker_url=proxy.url(rabbitmq_url)))
    await hub.settle()
    # What reaches the broker, seen on a connection of our own (not slowed down).
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(hub.bus.exchange_name)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, CUSTOMER_CHANGED)
        arrived: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def seen(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            await arrived.put((loop.time(), message.message_id or ""))

        await queue.consume(seen)
        first, second = changed("elsewhere", "crm", ["c-1"]), changed("elsewhere", "crm", ["c-2"])

        proxy.slow(CONFIRM_DELAY)
        async with hub.engine.begin() as tx:
            await hub.outbox.add(tx, [first])
        hub.relay.wake()
        assert (await asyncio.wait_for(arrived.get(), 5))[1] == first.id

        written = loop.time()
        async with hub.engine.begin() as tx:
            await hub.outbox.add(tx, [second])
        hub.relay.wake()
        at, message_id = await asyncio.wait_for(arrived.get(), 5)
        assert message_id == second.id
        assert at - written < CONFIRM_DELAY / 2, (
            f"the second event reached the broker {at - written:.2f} s after it was written: held back "
            "until the first one's confirm came"
        )
        assert not await _sent(hub, first.id), "the first event's confirm was still on its way"

        proxy.slow(0)
        await hub.settle()
        assert await _sent(hub, first.id) and await _sent(hub, second.id)
        await asyncio.sleep(0.3)
        assert arrived.empty(), "each event was published once"
    finally:
        proxy.slow(0)
        await connection.close()
