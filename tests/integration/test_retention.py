"""History is pruned: sent outbox rows and applied-message ids past retention go, unsent rows never do,
and the relay's poll reads unsent rows through a partial index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from hub.messaging.retention import Retention
from hub.store.db import create_engine, migrate
from hub.store.tables import outbox, processed_messages

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def _seed(engine) -> None:
    def row(event_id: str, created: datetime, sent: datetime | None) -> dict:
        return {"event_id": event_id, "type": "contact.response", "subject": "cus_1", "body": b"{}",
                "created_at": created, "sent_at": sent, "attempts": 0}

    async with engine.begin() as tx:
        await tx.execute(outbox.insert(), [
            row("old-sent", NOW - timedelta(days=3), NOW - timedelta(days=3)),
            row("new-sent", NOW - timedelta(hours=1), NOW - timedelta(hours=1)),
            row("old-unsent", NOW - timedelta(days=30), None),  # a broker out for a month: still kept
        ])
        await tx.execute(processed_messages.insert(), [
            {"destination": "cm", "event_id": "old", "processed_at": NOW - timedelta(days=20)},
            {"destination": "cm", "event_id": "new", "processed_at": NOW - timedelta(days=1)},
            {"destination": "crm", "event_id": "old", "processed_at": NOW - timedelta(days=1)},
        ])


async def _left(engine) -> tuple[set[str], set[tuple[str, str]]]:
    async with engine.connect() as conn:
        events = set((await conn.execute(select(outbox.c.event_id))).scalars())
        ids = {tuple(r) for r in await conn.execute(select(processed_messages.c.destination,
                                                             processed_messages.c.event_id))}
    return events, ids


async def _check(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
        await _seed(engine)
        retention = Retention(engine, outbox_seconds=86_400, processed_seconds=14 * 86_400, clock=lambda: NOW)
        assert await retention.prune() == (1, 1)
        assert await _left(engine) == ({"new-sent", "old-unsent"}, {("cm", "new"), ("crm", "old")})
        assert await retention.prune() == (0, 0)  # idempotent
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(outbox))).scalar() == 2
    finally:
        await engine.dispose()


async def test_history_past_retention_is_pruned_on_sqlite(sqlite_url):
    await _check(sqlite_url)


@pytest.mark.postgres
async def test_history_past_retention_is_pruned_on_postgres(postgres_url):
    await _check(postgres_url)


async def test_the_unsent_index_is_partial(sqlite_url):
    engine = create_engine(sqlite_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            sql = (await conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'ix_outbox_unsent'"))).scalar()
        assert "WHERE sent_at IS NULL" in sql
    finally:
        await engine.dispose()


async def test_many_rows_are_pruned_in_batches(sqlite_url, monkeypatch):
    from hub.messaging import retention as module

    monkeypatch.setattr(module, "BATCH", 7)
    engine = create_engine(sqlite_url)
    try:
        await migrate(engine)
        old = NOW - timedelta(days=2)
        async with engine.begin() as tx:
            await tx.execute(outbox.insert(), [
                {"event_id": f"e{i}", "type": "t", "subject": None, "body": b"{}", "created_at": old,
                 "sent_at": old, "attempts": 0} for i in range(30)
            ])
        assert await Retention(engine, 86_400, 86_400, clock=lambda: NOW).prune() == (30, 0)
    finally:
        await engine.dispose()
