"""A SQL system connected to the hub by YAML alone: its fields arrive over GraphQL with lineage naming
it, and when its database dies the hub answers with partial data and a SYSTEM_UNAVAILABLE error.

The SQL system's database is SQLite or PostgreSQL; the hub's own store stays SQLite. The system is
the `shop` of mappings/examples/sql (its config, profile map and seed.sql), added to a copy of the
shipped mapping, so the example is proven on both databases too.
"""

from __future__ import annotations

import asyncio
import runpy
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hub.api.app import create_app
from hub.config import PROJECT_ROOT, SHIPPED_MAPPINGS, Settings
from hub.runtime import Hub
from tests.conftest import POSTGRES_URL, fresh_postgres_database
from tests.support import gql, start_contact

EXAMPLE = PROJECT_ROOT / "mappings" / "examples" / "sql"
CUSTOMER = """
query($id: ID!) {
  customer(id: $id) {
    name emails products attributes unavailableSystems
    sources { field system fetchedAt }
  }
}
"""
ANNA = "anna.devries@example.com"  # stored as Anna.deVries@Example.com: key_match lower finds it


async def seed_example(url: str) -> None:
    """The example's seed.sql, statement by statement (asyncpg prepares one statement at a time)."""
    statements = runpy.run_path(str(EXAMPLE / "seed.py"))["statements"]
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements((EXAMPLE / "seed.sql").read_text()):
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


def mapping_with_shop(folder: Path) -> None:
    """The shipped mapping plus the example's `shop` system: a SQL system added by YAML alone."""
    shutil.copytree(SHIPPED_MAPPINGS, folder)
    doc = yaml.safe_load((folder / "hub.yaml").read_text())
    shop = yaml.safe_load((EXAMPLE / "hub.yaml").read_text())["systems"]["shop"]
    shop["timeout_seconds"] = 1
    doc["systems"]["shop"] = shop
    doc["survivorship"]["attributes"] = ["crm", "shop", "cm"]
    (folder / "hub.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(
    params=[
        pytest.param(("sqlite", "drop"), id="sqlite-table-dropped"),
        pytest.param(("sqlite", "lock"), id="sqlite-locked"),
        pytest.param(("postgres", "kill"), id="postgres-killed", marks=pytest.mark.postgres),
    ]
)
async def shop_db(request, tmp_path) -> AsyncIterator[tuple[str, str]]:
    """The seeded shop database and how the test will take it down."""
    backend, death = request.param
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
        await seed_example(url)
        yield url, death
        return
    async with fresh_postgres_database() as url:
        await seed_example(url)
        yield url, death


@pytest.fixture
async def hub_with_shop(shop_db, tmp_path, monkeypatch, bus_namespace) -> AsyncIterator[Hub]:
    url, _ = shop_db
    monkeypatch.setenv("SHOP_DB_URL", url)
    mapping_with_shop(tmp_path / "mappings")
    hub = Hub(Settings(
        mappings_dir=tmp_path / "mappings", database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        broker_url="memory://", bus_namespace=bus_namespace, relay_idle_seconds=0.1, reload_on_change=False,
    ))
    await hub.start()
    try:
        yield hub
    finally:
        await hub.close()


async def take_down(url: str, death: str, tmp_path: Path) -> sqlite3.Connection | None:
    if death == "drop":
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE orders"))
            await conn.execute(text("DROP TABLE customers"))
        await engine.dispose()
    elif death == "lock":  # a writer holds the file: readers wait, then give up
        writer = sqlite3.connect(tmp_path / "shop.db")
        writer.execute("BEGIN EXCLUSIVE")
        return writer
    else:  # the database goes away under open connections
        import asyncpg

        admin = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"))
        try:
            await admin.execute(f'DROP DATABASE "{url.rpartition("/")[2]}" WITH (FORCE)')
        finally:
            await admin.close()
    return None


async def test_a_sql_system_by_yaml_alone_then_partial_data_when_it_dies(hub_with_shop, shop_db, tmp_path):
    hub = hub_with_shop
    url, death = shop_db
    assert not hub.systems.start_errors
    transport = httpx.ASGITransport(app=create_app(hub=hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        started = await start_contact(client, email="  Anna.deVries@EXAMPLE.com ")
        customer_id = started["customer"]["id"]
        assert started["customer"]["name"] == "Anna de Vries", "the shop's name, read by email"

        view = (await gql(client, CUSTOMER, {"id": customer_id}))["customer"]
        assert view["name"] == "Anna de Vries"  # trimmed by the mapping's transform
        assert view["emails"] == [ANNA]
        assert view["products"] == ["mortgage", "savings-plus"]  # collected over the join, newest first
        assert view["attributes"] == {
            "tier": "gold",
            "lifetimeValue": 1250.5,
            "birthDate": "1985-03-14",
            "lastOrderAt": "2024-05-01T10:15:00+00:00",
            "newsletter": True,
        }
        assert view["unavailableSystems"] == []
        lineage = {s["field"]: s["system"] for s in view["sources"]}
        assert lineage["emails"] == "crm"
        for field in ("name", "products", "attributes.tier", "attributes.lifetimeValue", "attributes.newsletter"):
            assert lineage[field] == "shop", f"{field} comes from {lineage[field]}"
        assert all(s["fetchedAt"] for s in view["sources"])

        writer = await take_down(url, death, tmp_path)
        try:
            hub.cache.clear()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            body = await gql(client, CUSTOMER, {"id": customer_id}, ok=False)
            elapsed = loop.time() - t0
        finally:
            if writer is not None:
                writer.rollback()
                writer.close()

    assert elapsed < 1 + 1.5, f"the shop's 1 s timeout bounds the answer ({elapsed:.1f}s)"
    partial = body["data"]["customer"]
    assert partial["unavailableSystems"] == ["shop"]
    assert partial["emails"] == [ANNA], "what the other systems know is still answered"
    assert partial["name"] is None and partial["products"] == [] and partial["attributes"] == {}
    assert "shop" not in {s["system"] for s in partial["sources"]}
    (error,) = [e for e in body["errors"] if e["extensions"].get("code") == "SYSTEM_UNAVAILABLE"]
    assert error["extensions"]["system"] == "shop" and "system 'shop'" in error["message"]
    assert error["path"] == ["customer"]
    for leak in ("SELECT", "customers", "sqlite", "postgresql", url):
        assert leak not in error["message"], f"the error shows {leak!r}: {error['message']}"
