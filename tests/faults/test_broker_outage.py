"""A broker outage while channels record events: the API keeps accepting (the outbox holds them),
operators see the backlog, and after the broker is back every event is applied exactly once."""

from __future__ import annotations

import asyncio

import pytest

from hub.runtime import Hub
from tests.faults.conftest import OPERATIONS, api, first_offer, shown_counts, shown_event
from tests.support import RECORD, eventually, gql

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

N = 40
OUTAGE_SECONDS = 2.5


async def test_api_accepts_during_a_broker_outage_and_nothing_is_lost_or_doubled(
    settings_for, start_hub, proxy, rabbitmq_url
):
    hub = await start_hub(settings_for(broker_url=proxy.url(rabbitmq_url)))
    async with api(hub) as client:
        contact_id, customer_id, offer = await first_offer(client, "outage@example.com")
        accepted: list[str] = []
        during_cut = 0

        async def record_loop() -> None:
            nonlocal during_cut
            for _ in range(N):
                cut = proxy.cut_now
                data = await gql(client, RECORD, {"contactId": contact_id, "events": [shown_event(offer)]})
                result = data["recordContactEvents"]
                assert result["accepted"] == 1, result
                accepted.extend(result["eventIds"])
                during_cut += cut and proxy.cut_now
                await asyncio.sleep(0.05)

        recorder = asyncio.create_task(record_loop())
        backlog_during_cut = 0
        try:
            await eventually(lambda: len(accepted) >= 10, timeout=10)
            await proxy.cut()
            cut_at = asyncio.get_running_loop().time()
            # The relay notices (its publish fails) and the outbox grows while calls keep succeeding.
            await eventually(lambda: hub.relay.last_error is not None, timeout=10)
            backlog_during_cut = await eventually(lambda: hub.outbox.backlog(hub.engine), timeout=10)
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (asyncio.get_running_loop().time() - cut_at)))
            backlog_during_cut = max(backlog_during_cut, await hub.outbox.backlog(hub.engine))
            proxy.restore()
            await asyncio.wait_for(recorder, 30)
        finally:
            recorder.cancel()
            proxy.restore()
        assert len(accepted) == len(set(accepted)) == N
        assert during_cut >= 5, f"only {during_cut} calls were made while the broker was cut off"
        assert backlog_during_cut >= 5, backlog_during_cut

        await asyncio.wait_for(hub.bus.restored.wait(), 20)
        await hub.settle(timeout=20)
        assert proxy.accepted >= 2, "the hub reconnected through the proxy"
        assert (await shown_counts(client, customer_id))[offer] == N
        ops = await gql(client, OPERATIONS)
        assert ops["operations"]["outboxBacklog"] == 0, ops
        assert ops["operations"]["relayError"] is None, ops
        assert all(q["depth"] == 0 and q["deadLetters"] == 0 for q in ops["operations"]["queues"]), ops


async def test_operations_query_shows_the_outbox_backlog_while_the_broker_is_away(
    settings_for, start_hub, proxy, rabbitmq_url
):
    """Operators look at `operations` exactly when the broker is down: it must answer then, with the
    backlog and the relay's error, not fail because the queue depths cannot be read."""
    hub = await start_hub(settings_for(broker_url=proxy.url(rabbitmq_url)))
    async with api(hub) as client:
        contact_id, customer_id, offer = await first_offer(client, "ops@example.com")
        await hub.settle()
        await proxy.cut()
        try:
            for _ in range(3):
                await gql(client, RECORD, {"contactId": contact_id, "events": [shown_event(offer)]})
            await eventually(lambda: hub.relay.last_error is not None, timeout=10)
            body = await gql(client, OPERATIONS, ok=False)
            assert "errors" not in body, body["errors"]
            assert body["data"]["operations"]["outboxBacklog"] >= 3, body
            assert body["data"]["operations"]["relayError"], body
        finally:
            proxy.restore()
        await asyncio.wait_for(hub.bus.restored.wait(), 20)
        await hub.settle(timeout=20)
        ops = await gql(client, OPERATIONS)
        assert ops["operations"]["outboxBacklog"] == 0 and ops["operations"]["relayError"] is None, ops
        assert (await shown_counts(client, customer_id))[offer] == 3


async def test_settle_waits_through_the_reconnect_after_an_outage(settings_for, start_hub, proxy, rabbitmq_url):
    """`Hub.settle(timeout)` waits until everything accepted is applied; a broker that is still
    reconnecting is "not settled yet", not an error, as long as the timeout has not passed."""
    hub = await start_hub(settings_for(broker_url=proxy.url(rabbitmq_url)))
    async with api(hub) as client:
        contact_id, customer_id, offer = await first_offer(client, "settle@example.com")
        await proxy.cut()
        try:
            await gql(client, RECORD, {"contactId": contact_id, "events": [shown_event(offer)]})
            await eventually(lambda: not hub.bus.restored.is_set() and hub.relay.last_error, timeout=10)
        finally:
            proxy.restore()
        await hub.settle(timeout=20)
        assert (await shown_counts(client, customer_id))[offer] == 1


class RecordingHub(Hub):
    """A hub that notes the order in which its destinations are handed events."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.delivered: list[str] = []

    def handler_for(self, flow):
        inner = super().handler_for(flow)

        async def handle(event):
            self.delivered.append(event.id)
            await inner(event)

        return handle


async def test_events_of_a_customer_arrive_in_order_after_an_outage(settings_for, start_hub, proxy, rabbitmq_url):
    hub = await start_hub(settings_for(broker_url=proxy.url(rabbitmq_url)), cls=RecordingHub)
    async with api(hub) as client:
        contact_id, _, offer = await first_offer(client, "ordered@example.com")
        await hub.settle(timeout=20)
        await proxy.cut()
        await eventually(lambda: not hub.bus.restored.is_set(), timeout=10)
        accepted: list[str] = []
        for i in range(12):  # one call each, so the outbox order is the order the channel reported
            events = [shown_event(offer)] if i % 2 else [{"type": "INTEREST_SHOWN", "topic": f"t{i}"}]
            data = await gql(client, RECORD, {"contactId": contact_id, "events": events})
            accepted.extend(data["recordContactEvents"]["eventIds"])
        assert await hub.outbox.backlog(hub.engine) >= 12  # all held back by the outage
        proxy.restore()
        await asyncio.wait_for(hub.bus.restored.wait(), 20)
        await hub.settle(timeout=20)
    contact_events = [e for e in hub.delivered if e in set(accepted)]
    assert contact_events == accepted
