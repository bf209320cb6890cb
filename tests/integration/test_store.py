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


async def _tables(engine) -> set[str]:
    from sqlalchemy import inspect

    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def _version(engine, table: str) -> str | None:
    from sqlalchemy import text

    async with engine.connect() as conn:
        return (await conn.execute(text(f"SELECT version_num FROM {table}"))).scalar()


async def test_an_adapter_brings_its_own_tables_and_history(sqlite_url):
    """Installing an adapter adds its tables under its own version table; the hub's history is untouched,
    and a hub without that adapter has none of its tables."""
    engine = create_engine(sqlite_url)
    try:
        await migrate(engine)
        bare = await _tables(engine)
        assert "customers" in bare and "contacts" in bare
        assert not any(t.startswith(("crm_", "cm_")) for t in bare)
        hub_version = await _version(engine, "alembic_version")
        crm = next(c for c in installed_components() if c.name == "builtin-crm")
        await migrate(engine, [crm])
        assert {"crm_customers", "crm_contacts", "alembic_version_builtin_crm"} <= await _tables(engine)
        assert await _version(engine, "alembic_version") == hub_version
        assert await _version(engine, "alembic_version_builtin_crm") == "crm_0003"
        assert not any(t.startswith("cm_") for t in await _tables(engine))
    finally:
        await engine.dispose()


async def test_a_store_from_hub_0_1_is_adopted_and_its_contacts_move_to_the_hub(sqlite_url):
    """Hub 0.1 created the CRM's tables in its own history and kept contacts in crm_contacts."""
    from sqlalchemy import text

    engine = create_engine(sqlite_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE crm_contacts (id VARCHAR(40) PRIMARY KEY, customer_id VARCHAR(40) "
                                    "NOT NULL, channel VARCHAR(20) NOT NULL, started_at DATETIME NOT NULL, "
                                    "ended_at DATETIME, outcome VARCHAR(200))"))
            await conn.execute(text("INSERT INTO crm_contacts VALUES ('con_1', 'cus_1', 'WEBSITE', "
                                    "'2026-01-01 10:00:00', NULL, NULL)"))
        await migrate(engine, installed_components())
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id, customer_id FROM contacts"))).all()
        assert [tuple(r) for r in rows] == [("con_1", "cus_1")]
        assert await _version(engine, "alembic_version_builtin_crm") == "crm_0003"
    finally:
        await engine.dispose()
