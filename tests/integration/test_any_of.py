"""any_of: `column IN (a list bound at execution)`, an array on PostgreSQL (`= ANY`), an expanding IN
elsewhere: the same rows on both, for no value, one and many, and never a longer value's prefix.
(The relay's mark-sent update uses it on an integer column: the pipeline's tests on PostgreSQL.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from hub.store.db import create_engine, migrate
from hub.store.tables import customers
from hub.store.types import any_of

IDS = [f"cust_{i:020d}" for i in range(29)] + ["c" * 40]  # the last as long as the column allows
FIND = select(customers.c.id).where(any_of(customers.c.id, "ids")).order_by(customers.c.id)


async def _rows(url: str) -> list[list[str]]:
    engine = create_engine(url)
    try:
        await migrate(engine)
        async with engine.begin() as tx:
            await tx.execute(customers.insert(), [{"id": i, "created_at": datetime.now(UTC)} for i in IDS])
        asked = [[], [IDS[3]], IDS[5:25], [*IDS[:2], "nobody"], [IDS[-1] + "x"]]
        async with engine.connect() as conn:
            return [[r.id for r in await conn.execute(FIND, {"ids": ids})] for ids in asked]
    finally:
        await engine.dispose()


def _expected(rows):
    assert rows[0] == []
    assert rows[1] == [IDS[3]]
    assert rows[2] == IDS[5:25]
    assert rows[3] == IDS[:2]
    assert rows[4] == []  # a value longer than the column is not cut to a prefix that matches


async def test_any_of_on_sqlite(sqlite_url):
    _expected(await _rows(sqlite_url))


@pytest.mark.postgres
async def test_any_of_on_postgres(postgres_url):
    _expected(await _rows(postgres_url))
