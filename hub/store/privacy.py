"""The hub's privacy tables (hub.core.privacy): privacy requests with each system's receipt, and the
tombstones of erased customers. A component of the store of its own (MetaData, migrations and version
table `alembic_version_hub_privacy`), migrated with the hub's, so its history is separate from the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import JSON, Boolean, Column, Index, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store.direct import fetch_rows
from hub.store.types import UTCDateTime, any_of

metadata = MetaData()
MIGRATIONS = Path(__file__).resolve().parent / "migrations" / "privacy"
COMPONENT_NAME = "hub-privacy"

# One row per erasure or export. `identity_keys` (the customer's identity keys, [[kind, value], ...]) is what
# systems read by while they answer; it is wiped when every system has answered.
privacy_requests = Table(
    "privacy_requests",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("customer_id", String(40), nullable=False),
    Column("status", String(10), nullable=False),
    Column("identity_keys", JSON),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("completed_at", UTCDateTime()),
    Index("ix_privacy_requests_customer", "customer_id", "kind"),
)

# Each system's answer to a request. `part` is the system's share of an export.
privacy_receipts = Table(
    "privacy_receipts",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("system", String(60), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("detail", String(500)),
    Column("at", UTCDateTime()),
    Column("attempts", Integer, nullable=False),
    Column("final", Boolean, nullable=False),
    Column("part", JSON),
)

# Erased customers: consumers drop events about them instead of applying them (hub.messaging.consumer).
# The golden id only: the keys are gone with the customer, so the same email later is a new customer.
privacy_tombstones = Table(
    "privacy_tombstones",
    metadata,
    Column("customer_id", String(40), primary_key=True),
    Column("request_id", String(40), nullable=False),
    Column("erased_at", UTCDateTime(), nullable=False),
)


_ERASED = select(privacy_tombstones.c.customer_id).where(any_of(privacy_tombstones.c.customer_id, "ids"))


async def erased(conn: AsyncConnection, customer_ids: Iterable[str]) -> set[str]:
    """Which of these customers were erased (one indexed read)."""
    ids = list(dict.fromkeys(customer_ids))
    if not ids:
        return set()
    rows = await fetch_rows(conn, _ERASED, {"ids": ids})
    return {r.customer_id for r in rows}
