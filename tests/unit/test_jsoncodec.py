"""JSON columns go through orjson (hub.store.jsoncodec), and what orjson refuses still goes through."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, cast, insert, select

from hub.store.db import create_engine
from hub.store.jsoncodec import dumps, loads

VALUES = [
    {"counters": {"contact.interest.shown:t1": {"2026-12-01": 3}}, "recent_events": ["e1", "e2"]},
    {"name": "Zoë Ångström", "tags": ["ä", "✓"]},
    {"account": 2**70},  # past 64 bits: orjson refuses it, json takes it
    {1: "int key", None: "null key"},  # keys json turns into text
]


def test_values_come_back_as_the_standard_library_would_give_them():
    import json

    for value in VALUES:
        assert loads(dumps(value)) == json.loads(json.dumps(value))


def test_a_nan_written_by_the_standard_library_before_is_still_read():
    assert math.isnan(loads('{"score": NaN}')["score"])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'json.db'}")
        yield engine
        await engine.dispose()
    else:
        from tests.conftest import fresh_postgres_database

        async with fresh_postgres_database() as url:
            engine = create_engine(url)
            yield engine
            await engine.dispose()


async def test_json_columns_round_trip_through_the_store(engine):
    table = Table("doc", MetaData(), Column("id", Integer, primary_key=True), Column("body", JSON))
    async with engine.begin() as tx:
        await tx.run_sync(table.metadata.create_all)
        await tx.execute(insert(table), [{"id": i, "body": v} for i, v in enumerate(VALUES)])
    async with engine.connect() as conn:
        stored = [r.body for r in await conn.execute(select(table).order_by(table.c.id))]
    assert stored[0] == VALUES[0]
    assert stored[1] == VALUES[1]
    assert stored[2] == {"account": 2**70}
    assert stored[3] == {"1": "int key", "null": "null key"}
    async with engine.connect() as conn:  # as stored: orjson's compact UTF-8, not json's \\u escapes
        text = (await conn.execute(select(cast(table.c.body, String)).where(table.c.id == 1))).scalar_one()
    assert "Zoë Ångström" in text
