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


async def _dead_tuples(engine, table: str) -> int:
    async with engine.connect() as conn:  # a fresh transaction: a fresh stats snapshot
        return int((await conn.execute(text(
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = :t"), {"t": table})).scalar_one())


async def _poll_buffers(engine) -> int:
    """Buffers the relay's poll touches (its plan: the unsent partial index, then the heap)."""
    async with engine.connect() as conn:
        plan = (await conn.execute(text(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT seq, type, body FROM outbox "
            "WHERE sent_at IS NULL ORDER BY seq LIMIT 200"))).scalar_one()
    top = plan[0]["Plan"]
    return int(top["Shared Hit Blocks"] + top["Shared Read Blocks"])


@pytest.mark.postgres
async def test_history_is_vacuumed_after_pruning_on_postgres(postgres_url):
    """Marking rows sent leaves dead tuples, and dead entries at the front of the unsent index that every
    poll reads past; autovacuum may be off, so the prune VACUUMs the history tables itself."""
    engine = create_engine(postgres_url)
    try:
        await migrate(engine)
        recent = NOW - timedelta(minutes=5)
        async with engine.connect() as conn:  # one session, so its stats can be flushed
            await conn.execute(outbox.insert(), [
                {"event_id": f"e{i}", "type": "t", "subject": None, "body": b"x" * 300, "created_at": recent,
                 "attempts": 0} for i in range(5_000)
            ])
            await conn.execute(processed_messages.insert(), [
                {"destination": "cm", "event_id": f"e{i}", "processed_at": NOW - timedelta(days=30)}
                for i in range(2_000)
            ])
            await conn.commit()
            # What the relay does: every row marked sent (recent, so retention keeps them all).
            await conn.execute(outbox.update().values(sent_at=recent))
            await conn.commit()
            await conn.execute(outbox.insert(), [
                {"event_id": "unsent", "type": "t", "subject": None, "body": b"{}", "created_at": recent,
                 "attempts": 0}
            ])
            await conn.commit()
            await conn.execute(text("SELECT pg_stat_force_next_flush()"))
            await conn.commit()
        assert await _dead_tuples(engine, "outbox") >= 5_000
        before = await _poll_buffers(engine)

        retention = Retention(engine, outbox_seconds=86_400, processed_seconds=14 * 86_400, clock=lambda: NOW)
        assert await retention.prune() == (0, 2_000)

        assert await _dead_tuples(engine, "outbox") == 0
        assert await _dead_tuples(engine, "processed_messages") == 0
        after = await _poll_buffers(engine)
        assert after <= 5 < before, (before, after)  # the dead index entries are gone, not only skipped
        async with engine.connect() as conn:
            assert (await conn.execute(select(outbox.c.event_id).where(outbox.c.sent_at.is_(None)))).scalars().all() \
                == ["unsent"]
    finally:
        await engine.dispose()
