"""Migrations build exactly the tables the code declares, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.store.db import create_engine, migrate
from hub.store.schema import target_metadata


def _diff(connection):
    ctx = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(ctx, target_metadata)


async def _migrated_diff(url: str):
    engine = create_engine(url)
    try:
        await migrate(engine)
        await migrate(engine)  # idempotent: a second start changes nothing
        async with engine.connect() as conn:
            return await conn.run_sync(_diff)
    finally:
        await engine.dispose()


async def test_migrations_match_metadata_on_sqlite(sqlite_url):
    assert await _migrated_diff(sqlite_url) == []


@pytest.mark.postgres
async def test_migrations_match_metadata_on_postgres(postgres_url):
    assert await _migrated_diff(postgres_url) == []
