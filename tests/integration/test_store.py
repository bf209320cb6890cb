"""Migrations build exactly the tables the code declares, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.registry import installed_components
from hub.store.db import HUB_COMPONENT, create_engine, migrate


def _diff(connection, component):
    ctx = MigrationContext.configure(
        connection, opts={"compare_type": True, "version_table": component.version_table}
    )
    # Each component is compared with its own tables: the others' (and their indexes) are not its business.
    return [d for d in compare_metadata(ctx, component.metadata) if not _foreign(d, component)]


def _foreign(diff, component) -> bool:
    if not isinstance(diff, tuple) or diff[0] not in {"remove_table", "remove_index"}:
        return False
    table = diff[1] if diff[0] == "remove_table" else diff[1].table
    return table.name not in component.metadata.tables


async def _migrated_diff(url: str):
    components = installed_components()
    assert {c.name for c in components} >= {"builtin-crm", "builtin-cm"}
    engine = create_engine(url)
    try:
        await migrate(engine, components)
        await migrate(engine, components)  # idempotent: a second start changes nothing
        async with engine.connect() as conn:
            return {
                c.name: await conn.run_sync(_diff, c) for c in [HUB_COMPONENT, *components]
            }
    finally:
        await engine.dispose()


async def test_migrations_match_metadata_on_sqlite(sqlite_url):
    assert all(diff == [] for diff in (await _migrated_diff(sqlite_url)).values())


@pytest.mark.postgres
async def test_migrations_match_metadata_on_postgres(postgres_url):
    assert all(diff == [] for diff in (await _migrated_diff(postgres_url)).values())
