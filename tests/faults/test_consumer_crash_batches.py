"""A consumer that applies its queue in batches dies in the middle: after a batch committed but before
its acks (the broker delivers it again), or inside a batch's transaction (its processed-message rows
claimed, nothing committed). A fresh hub on the same database and namespace applies every event exactly
once, in order. (test_consumer_crash.py is the same crash one message at a time.)"""

from __future__ import annotations

import asyncio

import pytest

from hub.runtime import Hub
from tests.faults.conftest import api, first_offer, shown_counts, shown_event
from tests.support import RECORD, eventually, gql

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

M = 20
FLOW = "contact-events-to-cm"


class BatchObservedHub(Hub):
    """Notes each unit its bus handed the contact-events flow (a batch, or one event), and each event
    its CM adapter applied; with `hang_at` it stops, as a dead process would, on that unit (numbered
    from 1): after its transaction committed, or inside it (before CM applies anything)."""

    def __init__(self, settings, hang_at: int | None = None, where: str = "after-commit"):
        super().__init__(settings)
        self.hang_at, self.where = hang_at, where
        self.units: list[list[str]] = []
        self.applied: list[str] = []
        self.hung = asyncio.Event()
        self._cm_observed = False

    async def _hang(self) -> None:
        self.hung.set()
        await asyncio.Event().wait()

    def _observe_cm(self) -> None:
        if self._cm_observed:
            return
        self._cm_observed = True
        cm = self.systems.all("event_destination")["cm"]
        one, many = cm.consume, cm.consume_batch

        async def apply(events, real):
            contact = [e.id for e in events if e.type.startswith("contact.")]
            if contact and self.where == "inside-transaction" and len(self.units) == self.hang_at:
                await self._hang()  # the unit's processed-message rows are claimed, nothing committed
            self.applied.extend(contact)
            return await real()

        async def consume(tx, event):
            return await apply([event], lambda: one(tx, event))

        async def consume_batch(tx, events):
            return await apply(events, lambda: many(tx, events))

        cm.consume, cm.consume_batch = consume, consume_batch

    def handler_for(self, flow):
        self._observe_cm()
        inner = super().handler_for(flow)
        if flow.name != FLOW:
            return inner
        hub = self

        class Observed:
            async def __call__(self, event):
                await self.batch_of([event], lambda: inner(event))

            async def batch(self, events):
                await self.batch_of(events, lambda: inner.batch(events))

            async def batch_of(self, events, run):
                hub.units.append([e.id for e in events])
                await run()
                if hub.where == "after-commit" and len(hub.units) == hub.hang_at:
                    await hub._hang()  # committed, never acked

        return Observed()


@pytest.mark.parametrize("where", ["after-commit", "inside-transaction"])
async def test_events_of_a_batch_consumer_killed_mid_queue_are_applied_once_by_the_next_hub(
    where, settings_for, start_hub, proxy, rabbitmq_url
):
    class HubA(BatchObservedHub):
        def __init__(self, settings):
            super().__init__(settings, hang_at=2, where=where)

    # Batches of at most 5: the 20 events take at least four units, so the second is mid-queue.
    a = await start_hub(settings_for(broker_url=proxy.url(rabbitmq_url), consume_batch=5), cls=HubA)
    async with api(a) as client:
        contact_id, customer_id, offer = await first_offer(client, f"batch-crash-{where}@example.com")
        data = await gql(client, RECORD, {"contactId": contact_id, "events": [shown_event(offer)] * M})
        accepted = data["recordContactEvents"]["eventIds"]
        assert len(set(accepted)) == M
        await asyncio.wait_for(a.hung.wait(), 15)
        await eventually(lambda: _backlog_is_zero(a), timeout=15)
    assert [e for unit in a.units for e in unit] == accepted[: sum(map(len, a.units))]
    assert any(len(unit) > 1 for unit in a.units), f"no batch was formed: {a.units}"
    acked = len(a.units[0])
    committed = acked + (len(a.units[1]) if where == "after-commit" else 0)
    assert a.applied == accepted[:committed]

    await proxy.cut()
    b = await start_hub(settings_for(), cls=BatchObservedHub)
    await asyncio.wait_for(a.close(), 20)  # its open transaction rolls back
    await b.settle(timeout=20)

    async with api(b) as client:
        assert (await shown_counts(client, customer_id))[offer] == M
    # The broker redelivered everything A had not acked, in order ...
    assert [e for unit in b.units for e in unit] == accepted[acked:]
    # ... and B applied only what A had not committed: a committed redelivery was a no-op.
    assert b.applied == accepted[committed:]


async def _backlog_is_zero(hub: Hub) -> bool:
    return await hub.outbox.backlog(hub.engine) == 0
