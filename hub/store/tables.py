"""The hub's own tables: identity graph, outbox, processed messages, flow cursors, embedded queues.

Built-in systems keep their tables in their own packages (adapters/crm, adapters/cm) on the same
MetaData, so one Alembic history migrates a one-process deployment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for long-lived sequences.
Seq = BigInteger().with_variant(Integer(), "sqlite")

customers = Table(
    "customers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

# The identity graph: every key (email, phone, customer number, cookie id, a system's own id)
# points at one golden customer id.
customer_keys = Table(
    "customer_keys",
    metadata,
    Column("kind", String(20), primary_key=True),
    Column("value", String(320), primary_key=True),
    Column("customer_id", String(40), nullable=False, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

# Transactional outbox: written in the same transaction as the state change it reports.
outbox = Table(
    "outbox",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("type", String(120), nullable=False),
    Column("subject", String(120)),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
)
Index("ix_outbox_unsent", outbox.c.sent_at, outbox.c.seq)

# Idempotent consumer: one row per (destination, event) whose effect is committed.
processed_messages = Table(
    "processed_messages",
    metadata,
    Column("destination", String(120), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("processed_at", UTCDateTime(), nullable=False),
)

flow_cursors = Table(
    "flow_cursors",
    metadata,
    Column("flow", String(120), primary_key=True),
    Column("last_run_at", UTCDateTime(), nullable=False),
    Column("delivered", BigInteger, nullable=False, default=0),
)

# The embedded bus keeps its queues in the store, so the one-process hub loses nothing on a crash.
bus_messages = Table(
    "bus_messages",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("queue", String(120), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("state", String(10), nullable=False),  # ready | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("available_at", UTCDateTime(), nullable=False),
    Column("reason", Text),
    Column("dead_at", UTCDateTime()),
)
Index("ix_bus_messages_queue", bus_messages.c.queue, bus_messages.c.state, bus_messages.c.seq)

