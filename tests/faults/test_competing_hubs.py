"""Two `hub serve` processes on one PostgreSQL database and one RabbitMQ namespace, both consuming:
channels record events through both APIs at once. The two hubs compete for the same queues (both are
attached as consumers), and every customer's offerHistory ends exactly at what was recorded: no effect
applied twice, none lost, none dead-lettered."""

from __future__ import annotations

import asyncio
import itertools

import aio_pika
import pytest
from sqlalchemy import func, select

from hub.registry import load_mapping
from hub.store.db import create_engine
from hub.store.tables import outbox, processed_messages
from tests.faults.conftest import OPERATIONS, first_offer, shown_counts, shown_event
from tests.support import RECORD, eventually, gql

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]


async def test_two_hub_processes_share_the_work_and_apply_each_event_once(
    settings_for, hub_process, rabbitmq_url, bus_namespace
):
    """60 events across 3 customers, recorded through both hubs, 6 calls in flight."""
    await _compete(settings_for(), hub_process, rabbitmq_url, bus_namespace, customers=3, events=60, in_flight=6)


async def test_two_hubs_busy_with_one_customer_lose_no_event(
    settings_for, hub_process, rabbitmq_url, bus_namespace
):
    """The hard case: both hubs apply events of the same customer at the same time, all the time.
    Each must still be applied once; losing a race to the other hub is not a reason to give up."""
    await _compete(settings_for(), hub_process, rabbitmq_url, bus_namespace, customers=1, events=100, in_flight=10)


async def _compete(settings, hub_process, rabbitmq_url, bus_namespace, *, customers, events, in_flight):
    first = hub_process(settings)
    await first.wait_ready()  # one at a time: each migrates the shared store at start
    second = hub_process(settings)
    await second.wait_ready()
    mapping, _ = load_mapping(settings.mappings_dir)
    queue = next(f.queue for f in mapping.flows if "contact.proposition.shown" in f.events)

    # Both processes are attached to the queue as competing consumers.
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(f"{bus_namespace}.{queue}", passive=True)
        assert declared.declaration_result.consumer_count == 2
    finally:
        await connection.close()

    async with first.client() as a, second.client() as b:
        clients = [a, b]
        people = [await first_offer(clients[i % 2], f"competing-{i}@example.com") for i in range(customers)]
        expected = {customer: 0 for _, customer, _ in people}
        accepted: list[str] = []
        calls = list(zip(itertools.cycle(clients), itertools.cycle(people), range(events), strict=False))
        limit = asyncio.Semaphore(in_flight)

        async def record(client, person) -> None:
            contact_id, customer_id, offer = person
            async with limit:
                data = await gql(client, RECORD, {"contactId": contact_id, "events": [shown_event(offer)]})
            assert data["recordContactEvents"]["accepted"] == 1
            accepted.extend(data["recordContactEvents"]["eventIds"])
            expected[customer_id] += 1

        await asyncio.wait_for(asyncio.gather(*(record(c, p) for c, p, _ in calls)), 30)
        assert len(set(accepted)) == events and sum(expected.values()) == events

        # Settled: everything published, and every event's effect committed (its claim is stored in
        # the same transaction as the effect) -- or some event was given up on.
        engine = create_engine(settings.database_url)
        try:
            await eventually(lambda: _settled(engine, set(accepted), a), timeout=20)
            missing = set(accepted) - await _claimed(engine, set(accepted))
        finally:
            await engine.dispose()
        ops = [(await gql(c, OPERATIONS))["operations"] for c in clients]
        letters = sum(q["deadLetters"] for q in ops[0]["queues"])
        if missing or letters:
            logs = "\n".join(p.output()[-3000:] for p in (first, second))
            pytest.fail(
                f"{letters} accepted events dead-lettered ({len(missing)} of {events} not applied when the"
                f" first one was seen); the hubs' logs:\n{logs}"
            )

        # What a channel sees, asking either hub.
        for client, op in zip(clients, ops, strict=True):
            for _, customer_id, offer in people:
                assert (await shown_counts(client, customer_id)).get(offer) == expected[customer_id]
            assert op["outboxBacklog"] == 0, op
            assert all(q["depth"] == 0 and q["deadLetters"] == 0 for q in op["queues"]), op


async def _settled(engine, ids: set[str], client) -> bool:
    async with engine.connect() as conn:
        backlog = (await conn.execute(select(func.count()).where(outbox.c.sent_at.is_(None)))).scalar_one()
    if backlog == 0 and await _claimed(engine, ids) == ids:
        return True
    ops = (await gql(client, OPERATIONS))["operations"]
    return backlog == 0 and any(q["deadLetters"] for q in ops["queues"]) and all(
        q["depth"] == 0 for q in ops["queues"]
    )


async def _claimed(engine, ids: set[str]) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(processed_messages.c.event_id).where(
                processed_messages.c.destination == "cm", processed_messages.c.event_id.in_(ids)
            )
        )
        return set(rows.scalars())
