"""The outbox relay on PostgreSQL: one relay leads across hub processes (the relay's lock, held by its
connection), a round is one read and one update on that connection, another process's relay wakes the
leader for its own commits, and a relay that stops hands the lead on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from sqlalchemy import event

from hub.config import Settings
from hub.events import CloudEvent
from hub.messaging.bus.base import BusError
from hub.messaging.bus.embedded import EmbeddedBus
from hub.messaging.outbox import Outbox, OutboxRelay
from hub.store.db import create_engine, migrate
from tests.support import eventually

pytestmark = pytest.mark.postgres


class Broker(EmbeddedBus):
    """The bus as the relay sees it, keeping what each relay handed over (the broker's part is not what
    these tests are about)."""

    def __init__(self, engine) -> None:
        super().__init__(engine, Settings())
        self.published: list[str] = []

    async def publish_many(self, events: Sequence[CloudEvent]) -> list[BusError | None]:
        self.published.extend(e.id for e in events)
        return [None] * len(events)


def _events(n: int, tag: str) -> list[CloudEvent]:
    return [CloudEvent(type="contact.interest.shown", source="test", data={}, id=f"{tag}-{i}") for i in range(n)]


async def _write(engine, events: list[CloudEvent]) -> None:
    async with engine.begin() as tx:
        await Outbox().add(tx, events)


@pytest.fixture
async def engines(postgres_url):
    """Two engines on one database: two hub processes' pools."""
    first, second = create_engine(postgres_url), create_engine(postgres_url)
    await migrate(first)
    yield first, second
    await first.dispose()
    await second.dispose()


async def test_one_relay_leads_and_another_process_wakes_it_for_its_own_commits(engines):
    first, second = engines
    a, b = Broker(first), Broker(second)
    leader = OutboxRelay(first, a, idle=30.0)  # idle: only a wake-up can start a round in time
    other = OutboxRelay(second, b, idle=30.0)
    assert await leader.relay_once() == 0  # leads from now on (nothing to send yet)
    leader.start()
    other.start()
    try:
        await asyncio.sleep(0.1)
        await _write(second, _events(3, "second"))
        other.wake()  # as the hub does after a commit that wrote events
        await eventually(lambda: len(a.published) == 3, timeout=5)
        assert a.published == ["second-0", "second-1", "second-2"]
        assert b.published == []  # the other process never publishes while one leads
    finally:
        await other.stop()
        await leader.stop()


async def test_a_round_is_one_read_and_one_update_on_the_leaders_connection(engines):
    first, _ = engines
    statements: list[str] = []

    @event.listens_for(first.sync_engine, "connect")
    def log_queries(dbapi_connection, _record) -> None:
        dbapi_connection.driver_connection.add_query_logger(lambda q: statements.append(q.query))

    await first.dispose()  # connections from here on carry the logger
    relay = OutboxRelay(first, Broker(first))
    try:
        assert await relay.relay_once() == 0  # takes the lead
        await _write(first, _events(1, "warm"))
        assert await relay.relay_once() == 1  # and learns the types (asyncpg asks for them once)
        await _write(first, _events(3, "e"))
        statements.clear()
        assert await relay.relay_once() == 3
        await asyncio.sleep(0.05)  # asyncpg tells its query loggers on the loop's next turns
        assert len(statements) == 2, statements  # no BEGIN, lock or COMMIT around them
        assert statements[0].lstrip().upper().startswith("SELECT")
        assert statements[1].lstrip().upper().startswith("UPDATE")
        statements.clear()
        assert await relay.relay_once() == 0  # an idle poll: one read
        await asyncio.sleep(0.05)
        assert len(statements) == 1, statements
    finally:
        await relay.stop()


async def test_a_relay_that_stops_hands_the_lead_on(engines):
    first, second = engines
    a, b = Broker(first), Broker(second)
    leader, other = OutboxRelay(first, a), OutboxRelay(second, b)
    assert await leader.relay_once() == 0
    await _write(first, _events(2, "x"))
    assert await other.relay_once() == 0  # not the leader: leaves them
    assert b.published == []
    await leader.stop()  # its connection is closed, not pooled: the lock goes with it
    assert await other.relay_once() == 2
    assert b.published == ["x-0", "x-1"]
    await other.stop()
