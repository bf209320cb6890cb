"""Shared fixtures of the SQL adapter's tests: a shop database on SQLite and on PostgreSQL, built with
SQLAlchemy, and adapters built on it the way the registry builds them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    event,
)
from sqlalchemy.ext.asyncio import create_async_engine

from hub.config import Settings
from hub.ports import AdapterContext
from hub_adapters.generic.sql import SqlAdapter, SqlConfig
from tests.conftest import fresh_postgres_database

metadata = MetaData()
customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(200), nullable=False, unique=True),
    Column("full_name", Text),
    Column("tier", String(1)),
    Column("vip", Boolean),
    Column("born", Date),
    Column("last_seen", DateTime(timezone=True)),
    Column("signed_up", DateTime),  # without a zone
    Column("balance", Numeric(12, 2)),
    Column("score", Float),
    Column("visits", Integer),
    Column("notes", Text),
)
orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("product", String(100), nullable=False),
    Column("ordered_at", DateTime, nullable=False),
)

CUSTOMERS = [
    {"id": 1, "email": "anna@example.com", "full_name": "Anna de Vries", "tier": "G", "vip": True,
     "born": date(1990, 1, 2), "last_seen": datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
     "signed_up": datetime(2020, 1, 1, 12, 0), "balance": Decimal("1250.50"), "score": 0.75,
     "visits": 12, "notes": None},
    {"id": 2, "email": "Bob@Example.com", "full_name": "Bob", "tier": "S", "vip": False, "born": None,
     "last_seen": None, "signed_up": None, "balance": Decimal("100.00"), "score": None, "visits": 0,
     "notes": "likes mail"},
    {"id": 3, "email": "carol@example.com", "full_name": "Carol", "tier": None, "vip": None, "born": None,
     "last_seen": None, "signed_up": None, "balance": None, "score": None, "visits": None, "notes": None},
]
ORDERS = [
    {"id": 1, "customer_id": 1, "product": "savings", "ordered_at": datetime(2023, 2, 1, 9, 0)},
    {"id": 2, "customer_id": 1, "product": "mortgage", "ordered_at": datetime(2024, 5, 1, 10, 0)},
    {"id": 3, "customer_id": 1, "product": "mortgage", "ordered_at": datetime(2022, 7, 1, 16, 0)},
    {"id": 4, "customer_id": 2, "product": "credit-card", "ordered_at": datetime(2023, 11, 20, 8, 0)},
]


async def seed(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(customers.insert(), CUSTOMERS)
            await conn.execute(orders.insert(), ORDERS)
    finally:
        await engine.dispose()


async def execute(url: str, *statements: str) -> None:
    """Run DDL on the database behind the adapter's back (drop a table, add a sequence...)."""
    from sqlalchemy import text

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request, tmp_path) -> AsyncIterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def shop_url(db_url) -> str:
    """The shop database, seeded."""
    await seed(db_url)
    return db_url


@pytest.fixture
async def make_adapter(tmp_path) -> AsyncIterator[Callable[..., SqlAdapter]]:
    """Build (not start) adapters from config; all are closed at the end of the test."""
    built: list[SqlAdapter] = []

    def make(url: str, *, timeout: float = 5.0, system: str = "shop", **config: Any) -> SqlAdapter:
        ctx = AdapterContext(
            system=system,
            settings=Settings(mappings_dir=tmp_path),
            engine=None,  # type: ignore[arg-type]  # an external system never touches the hub's store
            config=SqlConfig.model_validate({"url": url, **config}),
            mappings_dir=Path(tmp_path),
            timeout=timeout,
            log=logging.getLogger(f"hub.system.{system}"),
        )
        adapter = SqlAdapter(ctx)
        built.append(adapter)
        return adapter

    yield make
    for adapter in built:
        await adapter.close()


class Statements:
    """The statements an adapter's engine sends, with their parameters (the test hook on batching)."""

    def __init__(self, adapter: SqlAdapter):
        assert adapter.engine is not None, "start the adapter first"
        self.sent: list[tuple[str, Any]] = []
        event.listen(adapter.engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn, _cursor, statement, parameters, _context, _many) -> None:
        self.sent.append((statement, parameters))

    def clear(self) -> None:
        self.sent.clear()

    def __len__(self) -> int:
        return len(self.sent)
