"""insert_rows: the rows as SQLAlchemy would insert them (types, defaults, JSON), in the caller's
transaction whether or not a statement ran before them, a duplicate key as SQLAlchemy's IntegrityError,
conflicts skipped and the inserted rows answered, on both backends (on PostgreSQL the rows go to the
driver directly inside the transaction SQLAlchemy has begun, its first statement included)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, event, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.crm.tables import crm_customers
from hub.store.db import create_engine, migrate, reading
from hub.store.direct import SKIP_CONFLICTS, fetch_rows, insert_rows
from hub.store.tables import contacts, customer_keys, customers, outbox
from hub.store.types import any_of

AT = datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))


@contextlib.asynccontextmanager
async def _store(url: str) -> AsyncIterator[AsyncEngine]:
    """The hub's store at `url`, migrated; disposed after."""
    engine = create_engine(url)
    try:
        await migrate(engine)
        yield engine
    finally:
        await engine.dispose()


def _outbox_rows(first: int, n: int) -> list[dict]:
    return [{"event_id": f"evt-{i}", "type": "contact.started", "subject": f"cus_{i}", "body": b"\x00{\xff}",
             "created_at": AT} for i in range(first, first + n)]


async def _check(url: str) -> None:
    async with _store(url) as engine:
        async with engine.begin() as tx:  # the transaction's first statement, then one after it
            await insert_rows(tx, customers, [{"id": "cus_a", "created_at": AT}])
            await insert_rows(tx, outbox, _outbox_rows(0, 3))
            await insert_rows(tx, outbox, [])
        async with engine.connect() as conn:
            sent = (await conn.execute(select(outbox).order_by(outbox.c.seq))).all()
            assert [(r.event_id, r.body, r.attempts, r.sent_at) for r in sent] == [
                (f"evt-{i}", b"\x00{\xff}", 0, None) for i in range(3)]  # attempts: its default
            assert all(r.created_at == AT and r.created_at.tzinfo is not None for r in sent)
            assert (await conn.execute(select(customers.c.created_at))).scalar_one() == AT

        # Rolled back with the caller's transaction, the first statement included.
        with pytest.raises(RuntimeError):
            async with engine.begin() as tx:
                await insert_rows(tx, customers, [{"id": "cus_b", "created_at": AT}])
                await insert_rows(tx, contacts, [
                    {"id": "con_b", "customer_id": "cus_b", "channel": "WEBSITE", "started_at": AT}])
                raise RuntimeError("the caller fails after the inserts")
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(contacts))).scalar_one() == 0
            assert (await conn.execute(select(func.count()).select_from(customers))).scalar_one() == 1

        # A duplicate key is SQLAlchemy's IntegrityError, and nothing of the transaction stays.
        with pytest.raises(IntegrityError):
            async with engine.begin() as tx:
                await insert_rows(tx, customers, [{"id": "cus_c", "created_at": AT}])
                await insert_rows(tx, outbox, _outbox_rows(2, 2))  # evt-2 exists
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(customers))).scalar_one() == 1
            assert (await conn.execute(select(func.count()).select_from(outbox))).scalar_one() == 3

        # Conflicts skipped, the inserted rows answered (by any unique key, or by the one named).
        keys = [{"kind": "email", "value": f"k{i}@example.com", "customer_id": "cus_a", "created_at": AT}
                for i in range(4)]
        async with engine.begin() as tx:
            await tx.execute(select(1))
            first = await insert_rows(tx, customer_keys, keys[:2], conflict=SKIP_CONFLICTS,
                                      returning=("kind", "value"))
            again = await insert_rows(tx, customer_keys, keys, conflict=SKIP_CONFLICTS,
                                      returning=("kind", "value"))
        assert sorted((r.kind, r.value) for r in first) == [("email", "k0@example.com"), ("email", "k1@example.com")]
        assert sorted(r.value for r in again) == ["k2@example.com", "k3@example.com"]
        async with engine.begin() as tx:
            await tx.run_sync(crm_customers.create)
        row = {"id": "cus_a", "name": "Ann Élan", "emails": ["a@example.com"], "phones": [],
               "attributes": {"tier": "gold", "n": 2}, "products": [], "created_at": AT, "updated_at": AT}
        async with engine.begin() as tx:
            await tx.execute(select(1))
            made = await insert_rows(tx, crm_customers, [row, {**row, "id": "cus_b", "name": None}],
                                     conflict=("id",), returning=("id",))
            made += await insert_rows(tx, crm_customers, [row], conflict=("id",), returning=("id",))
        assert sorted(r.id for r in made) == ["cus_a", "cus_b"]
        async with engine.connect() as conn:
            got = (await conn.execute(select(crm_customers).where(crm_customers.c.id == "cus_a"))).one()
            assert (got.name, got.emails, got.attributes, got.created_at) == (
                "Ann Élan", ["a@example.com"], {"tier": "gold", "n": 2}, AT)

        with pytest.raises(ValueError, match="no column"):
            async with engine.begin() as tx:
                await tx.execute(select(1))
                await insert_rows(tx, customers, [{"id": "cus_d", "created_at": AT, "nme": "x"}])


async def test_insert_rows_on_sqlite(sqlite_url):
    await _check(sqlite_url)


@pytest.mark.postgres
async def test_insert_rows_on_postgres(postgres_url):
    await _check(postgres_url)



# --- fetch_rows ------------------------------------------------------------------------------------

UNSENT = (select(outbox.c.seq, outbox.c.event_id, outbox.c.created_at).where(outbox.c.sent_at.is_(None))
          .order_by(outbox.c.seq).limit(bindparam("n")))
OF_TYPE = select(outbox.c.event_id).where(outbox.c.type == "contact.started", any_of(outbox.c.event_id, "ids"))
MARK = update(outbox).where(any_of(outbox.c.event_id, "ids")).values(sent_at=bindparam("at"))
MARK_RETURNING = MARK.returning(outbox.c.event_id, outbox.c.sent_at)
EXPANDING = select(outbox.c.event_id).where(outbox.c.event_id.in_(bindparam("ids", expanding=True)))


async def _fetch(url: str) -> None:
    async with _store(url) as engine:
        async with engine.begin() as tx:
            await insert_rows(tx, outbox, _outbox_rows(0, 5))
        async with reading(engine).connect() as conn:  # a reader (autocommit on PostgreSQL)
            first = await fetch_rows(conn, UNSENT, {"n": 3})
            assert [r.event_id for r in first] == ["evt-0", "evt-1", "evt-2"]
            _seq, event_id, created_at = first[0]  # by position too
            assert event_id == "evt-0" and created_at == AT and created_at.tzinfo is not None
            found = await fetch_rows(conn, OF_TYPE, {"ids": ["evt-1", "evt-4", "nobody"]})
            assert sorted(r.event_id for r in found) == ["evt-1", "evt-4"]  # and the value bound in it
            assert [r.event_id for r in await fetch_rows(conn, EXPANDING, {"ids": ["evt-3"]})] == ["evt-3"]
        later = AT + timedelta(minutes=5)
        async with engine.begin() as tx:  # DML before any other statement, then after one
            assert await fetch_rows(tx, MARK, {"ids": ["evt-0"], "at": later}) == []
            marked = await fetch_rows(tx, MARK_RETURNING, {"ids": ["evt-1", "evt-2"], "at": later})
            assert sorted((r.event_id, r.sent_at) for r in marked) == [("evt-1", later), ("evt-2", later)]
        with pytest.raises(RuntimeError):
            async with engine.begin() as tx:
                await tx.execute(select(1))
                await fetch_rows(tx, MARK, {"ids": ["evt-3"], "at": later})
                raise RuntimeError("rolled back with the caller's transaction")
        async with engine.connect() as conn:
            assert [r.event_id for r in await fetch_rows(conn, UNSENT, {"n": 10})] == ["evt-3", "evt-4"]


async def test_fetch_rows_on_sqlite(sqlite_url):
    await _fetch(sqlite_url)


@pytest.mark.postgres
async def test_fetch_rows_on_postgres(postgres_url):
    await _fetch(postgres_url)


@pytest.mark.postgres
async def test_a_listener_sees_every_statement(postgres_url):
    """Whoever listens to SQLAlchemy's statements (tracing, a kit counting calls) sees these too."""
    seen: list[str] = []
    async with _store(postgres_url) as engine:
        event.listen(engine.sync_engine, "before_cursor_execute", lambda _c, _cur, sql, *_: seen.append(sql))
        async with engine.begin() as tx:
            await tx.execute(select(1))
            await insert_rows(tx, outbox, _outbox_rows(0, 2))
            await fetch_rows(tx, UNSENT, {"n": 5})
        assert any("INSERT INTO outbox" in s for s in seen) and any("FROM outbox" in s for s in seen)


@pytest.mark.postgres
async def test_the_first_statement_of_a_transaction_goes_to_the_driver_inside_it(postgres_url):
    """SQLAlchemy's adapter sends BEGIN with a connection's first statement; when that is one of these,
    the adapter begins it here, and the statement still belongs to SQLAlchemy's transaction."""
    executed: list[str] = []  # what SQLAlchemy itself executed (not a cursor listener: that takes its path)
    async with _store(postgres_url) as engine:
        event.listen(engine.sync_engine, "after_execute", lambda _c, clause, *_: executed.append(str(clause)))
        async with engine.begin() as tx:
            await insert_rows(tx, outbox, _outbox_rows(0, 2))
            assert [r.event_id for r in await fetch_rows(tx, UNSENT, {"n": 5})] == ["evt-0", "evt-1"]
        async with engine.begin() as tx:
            assert await fetch_rows(tx, MARK, {"ids": ["evt-0"], "at": AT}) == []
        assert not [s for s in executed if "outbox" in s], executed  # all of them the driver's

        with pytest.raises(RuntimeError):
            async with engine.begin() as tx:
                await insert_rows(tx, outbox, _outbox_rows(2, 1))
                raise RuntimeError("rolled back with the caller's transaction")
        # Not begun by SQLAlchemy (a plain connect): SQLAlchemy's path autobegins it, the caller commits.
        async with engine.connect() as conn:
            await insert_rows(conn, outbox, _outbox_rows(3, 1))
            await conn.commit()
        async with engine.connect() as conn:
            async with conn.begin():
                await insert_rows(conn, outbox, _outbox_rows(4, 1))
            rows = await conn.execute(select(outbox.c.event_id, outbox.c.sent_at).order_by(outbox.c.seq))
            assert [(r.event_id, r.sent_at is not None) for r in rows] == [
                ("evt-0", True), ("evt-1", False), ("evt-3", False), ("evt-4", False)]
