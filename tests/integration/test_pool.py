"""The store's connection pool on PostgreSQL: HUB_DB_POOL_SIZE connections kept, HUB_DB_MAX_OVERFLOW more
under a burst, and no more than both at once (a caller beyond them waits for one to come back)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from hub.config import Settings
from hub.runtime import Hub
from hub.store.db import create_engine
from tests.support import eventually


@pytest.mark.postgres
async def test_the_pool_opens_at_most_its_size_and_overflow(postgres_url):
    engine = create_engine(postgres_url, pool_size=2, max_overflow=1)
    held = []
    try:
        for _ in range(3):  # two kept, one beyond them
            conn = await engine.connect()
            await conn.execute(select(1))
            held.append(conn)
        fourth = asyncio.ensure_future(engine.connect())
        await asyncio.sleep(0.3)
        assert not fourth.done()  # it waits for a connection to come back
        await held.pop().close()
        held.append(await asyncio.wait_for(fourth, 5))
        assert (await held[-1].execute(select(1))).scalar_one() == 1
    finally:
        for conn in held:
            await conn.close()
        await engine.dispose()


@pytest.mark.postgres
async def test_the_hub_sizes_its_pool_from_the_settings(postgres_url):
    hub = Hub(Settings(database_url=postgres_url, db_pool_size=3, db_max_overflow=0, reload_on_change=False))
    await hub.start(consume=False)
    try:
        assert hub.engine.pool.size() == 3  # type: ignore[attr-defined]
    finally:
        await hub.close()


def test_pool_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("HUB_DB_POOL_SIZE", "7")
    monkeypatch.setenv("HUB_DB_MAX_OVERFLOW", "0")
    settings = Settings()
    assert (settings.db_pool_size, settings.db_max_overflow) == (7, 0)
    monkeypatch.setenv("HUB_DB_POOL_SIZE", "0")
    with pytest.raises(ValidationError, match="db_pool_size"):
        Settings()


def test_a_pool_with_room_for_the_relay_alone_is_refused():
    with pytest.raises(ValidationError, match="the leading outbox relay keeps one connection"):
        Settings(db_pool_size=1, db_max_overflow=0)
    assert Settings(db_pool_size=1, db_max_overflow=1).db_pool_size == 1


@pytest.mark.postgres
async def test_while_the_relay_leads_the_api_still_gets_a_connection(postgres_url):
    hub = Hub(Settings(database_url=postgres_url, db_pool_size=1, db_max_overflow=1, reload_on_change=False))
    await hub.start(consume=False)
    try:
        await eventually(lambda: hub.relay._leader is not None)  # it holds one connection now
        async with asyncio.timeout(5):
            async with hub.engine.connect() as conn:
                assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
    finally:
        await hub.close()
