"""Poison messages on the real broker: bad messages published straight to the exchange, between good
events, go to the dead-letter queue with a reason (seen through the bus, `hub dlq list` and the
`operations` query) while the good ones are applied; `hub dlq replay` sends one back, and since it is
still bad it is dead-lettered again: nothing is lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest

from hub.config.mapping import FlowMode
from hub.events import CloudEvent
from tests.faults.conftest import OPERATIONS, api, first_offer, run_hub, shown_counts, shown_event
from tests.support import RECORD, eventually, gql

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]


async def test_malformed_messages_are_dead_lettered_with_a_reason_and_replay_is_consistent(
    settings_for, start_hub, rabbitmq_url, bus_namespace
):
    settings = settings_for()
    hub = await start_hub(settings)
    # A type one destination alone subscribes to (contact.response also goes to the CRM: two copies).
    flow = next(f for f in hub.mapping.flows if "contact.proposition.shown" in f.events)
    assert [f for f in hub.mapping.flows if "contact.proposition.shown" in f.events] == [flow]
    assert flow.mode is FlowMode.REALTIME
    async with api(hub) as client:
        contact_id, customer_id, offer = await first_offer(client, "poison@example.com")

        async def good(n: int) -> None:
            for _ in range(n):
                await gql(client, RECORD, {"contactId": contact_id, "events": [shown_event(offer)]})

        not_json = b"this is {not json"
        not_cloudevent = json.dumps({"hello": "world", "id": 7}).encode()
        wrong_data = CloudEvent(
            type="contact.proposition.shown", source="urn:test", subject=customer_id, data={"colour": "blue"}
        )
        connection = await aio_pika.connect(rabbitmq_url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(f"{bus_namespace}.events")

            async def publish(body: bytes, message_id: str | None = None) -> None:
                await exchange.publish(
                    aio_pika.Message(body, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key="contact.proposition.shown",
                    mandatory=True,
                )

            await good(3)
            await publish(not_json)
            await good(2)
            await publish(not_cloudevent, message_id=f"raw-{uuid.uuid4().hex[:8]}")
            await good(2)
            await publish(wrong_data.to_json(), message_id=wrong_data.id)
            await good(3)
        finally:
            await connection.close()

        await hub.settle(timeout=20)
        letters = await eventually(lambda: _letters_when(hub, 3), timeout=15)
        assert (await shown_counts(client, customer_id))[offer] == 10
        assert {d.queue for d in letters} == {flow.queue}
        by_body = {d.body: d for d in letters}
        assert set(by_body) == {not_json, not_cloudevent, wrong_data.to_json()}
        assert by_body[not_json].id  # aio-pika gave it a message id; the hub keeps it
        assert "not JSON" in by_body[not_json].reason
        assert by_body[not_json].reason.startswith("MalformedEvent")
        assert by_body[not_cloudevent].reason.startswith("MalformedEvent"), by_body[not_cloudevent].reason
        assert by_body[wrong_data.to_json()].id == wrong_data.id
        assert by_body[wrong_data.to_json()].reason.startswith("PermanentError")
        assert all(d.dead_at is not None for d in letters)

        # The same, as an operator sees it: the CLI in its own process, and the operations query.
        listed = await asyncio.to_thread(run_hub, settings, "dlq", "list")
        assert listed.returncode == 0, listed.stderr
        rows = [line.split("\t") for line in listed.stdout.splitlines() if "\t" in line]
        assert len(rows) == 3, listed.stdout
        for d in letters:
            (row,) = [r for r in rows if r[0] == d.id]
            assert row[1] == flow.queue and row[-1] == d.reason, row
        ops = (await gql(client, OPERATIONS))["operations"]
        (queue,) = [q for q in ops["queues"] if q["queue"] == flow.queue]
        assert queue["deadLetters"] == 3 and queue["depth"] == 0, ops

        # Replay one: it goes back to its queue, fails again (still bad), and is a dead letter again.
        replayed = await asyncio.to_thread(run_hub, settings, "dlq", "replay", "--id", wrong_data.id)
        assert replayed.returncode == 0, replayed.stderr
        assert "replayed 1" in replayed.stdout, replayed.stdout
        again = await eventually(lambda: _letters_when(hub, 3, wrong_data.id), timeout=15)
        await hub.settle(timeout=20)
        after = await hub.bus.dead_letters()
        assert sorted(d.id for d in after) == sorted(d.id for d in letters) == sorted(d.id for d in again)
        assert next(d.reason for d in after if d.id == wrong_data.id).startswith("PermanentError")
        assert (await shown_counts(client, customer_id))[offer] == 10
        ops = (await gql(client, OPERATIONS))["operations"]
        (queue,) = [q for q in ops["queues"] if q["queue"] == flow.queue]
        assert queue["deadLetters"] == 3 and queue["depth"] == 0, ops


async def _letters_when(hub, count: int, replayed: str | None = None):
    """The dead letters once there are `count` (and the replayed one is back among them)."""
    letters = await hub.bus.dead_letters()
    if len(letters) != count:
        return None
    if replayed is not None and replayed not in {d.id for d in letters}:
        return None
    return letters
