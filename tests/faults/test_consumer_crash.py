"""A consumer dies in the middle of a batch, with more deliveries prefetched and unacked. Two places to
die: after an event's effect committed but before the ack (the broker will deliver it again), or inside
the effect's transaction (its processed-message row claimed but not committed). The broker redelivers
to a fresh hub on the same database and namespace, which applies every event exactly once."""

from __future__ import annotations

import asyncio

import pytest

from hub.runtime import Hub
from tests.faults.conftest import api, first_offer, shown_counts, shown_event
from tests.support import RECORD, eventually, gql

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

M = 20
ACKED_BEFORE_CRASH = 5


class ObservedHub(Hub):
    """A hub that notes, per contact event, each delivery its bus handed over and each effect its CM
    adapter was asked to apply; with `hang_at` set it stops (as a dead process would) on delivery
    number `hang_at`, either after the effect committed or inside the effect's transaction."""

    def __init__(self, settings, hang_at: int | None = None, where: str = "after-commit"):
        super().__init__(settings)
        self.hang_at, self.where = hang_at, where
        self.delivered: list[str] = []
        self.applied: list[str] = []
        self.hung = asyncio.Event()
        self._cm_observed = False

    async def _hang(self) -> None:
        self.hung.set()
        await asyncio.Event().wait()

    def _observe_cm(self) -> None:
        """Wrap this hub's CM adapter instance (before any handler can run: from `handler_for`)."""
        if self._cm_observed:
            return
        self._cm_observed = True
        cm = self.systems.all("event_destination")["cm"]
        real = cm.consume

        async def consume_event(tx, event):
            if event.type.startswith("contact."):
                if self.where == "inside-transaction" and len(self.delivered) == self.hang_at:
                    await self._hang()  # the processed-message row is claimed, nothing committed
                self.applied.append(event.id)
            return await real(tx, event)

        cm.consume = consume_event

    def handler_for(self, flow):
        self._observe_cm()
        inner = super().handler_for(flow)

        async def handle(event):
            if not event.type.startswith("contact."):
                return await inner(event)
            self.delivered.append(event.id)
            await inner(event)
            if self.where == "after-commit" and len(self.delivered) == self.hang_at:
                await self._hang()  # committed, never acked

        return handle


@pytest.mark.parametrize("where", ["after-commit", "inside-transaction"])
async def test_events_of_a_consumer_killed_mid_batch_are_applied_once_by_the_next_hub(
    where, settings_for, start_hub, proxy, rabbitmq_url
):
    # Hub A reaches the broker through the proxy, so its connection can be cut as by a crash. It
    # records the events itself and consumes them; it stops on the sixth.
    victim = ACKED_BEFORE_CRASH + 1

    class HubA(ObservedHub):
        def __init__(self, settings):
            super().__init__(settings, hang_at=victim, where=where)

    a = await start_hub(settings_for(broker_url=proxy.url(rabbitmq_url)), cls=HubA)
    async with api(a) as client:
        contact_id, customer_id, offer = await first_offer(client, f"crash-{where}@example.com")
        accepted: list[str] = []
        for _ in range(M // 4):
            data = await gql(client, RECORD, {"contactId": contact_id, "events": [shown_event(offer)] * 4})
            accepted += data["recordContactEvents"]["eventIds"]
        assert len(set(accepted)) == M
        await asyncio.wait_for(a.hung.wait(), 15)
        await eventually(lambda: _backlog_is_zero(a), timeout=15)  # A published all M before it dies
    assert a.delivered == accepted[:victim]
    committed_by_a = victim if where == "after-commit" else ACKED_BEFORE_CRASH
    assert a.applied == accepted[:committed_by_a]

    # The crash: A's broker connection drops with its deliveries unacked, and never comes back.
    await proxy.cut()
    b = await start_hub(settings_for(), cls=ObservedHub)
    # A's process going away also ends its database session: an open transaction rolls back (B may
    # already be waiting on the processed-message row A claimed in it).
    await asyncio.wait_for(a.close(), 20)
    await b.settle(timeout=20)

    async with api(b) as client:
        assert (await shown_counts(client, customer_id))[offer] == M
    # The broker redelivered everything A had not acked, in order ...
    assert b.delivered == accepted[ACKED_BEFORE_CRASH:]
    # ... and B applied only what A had not committed: a committed redelivery was a no-op.
    assert b.applied == accepted[committed_by_a:]


async def _backlog_is_zero(hub: Hub) -> bool:
    return await hub.outbox.backlog(hub.engine) == 0
