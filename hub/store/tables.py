"""The hub's own tables: identity graph, contacts, outbox, processed messages, flow cursors, embedded
queues. Adapters keep theirs on a MetaData of their own, with their own migrations (hub.store.db).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, MetaData, String, Table, Text

from hub.store.types import Seq, UTCDateTime

metadata = MetaData()


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
    Column("kind", String(60), primary_key=True),
    Column("value", String(320), primary_key=True),
    Column("customer_id", String(40), nullable=False, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

# Contacts are the hub's: one id per interaction; the contact registry (CRM) is told about each.
contacts = Table(
    "contacts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("customer_id", String(40), nullable=False, index=True),
    Column("channel", String(20), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
    Column("outcome", String(200)),
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
# Partial indexes: the relay's poll reads only unsent rows and retention only sent ones, so neither
# slows down as the history grows.
Index("ix_outbox_unsent", outbox.c.seq, postgresql_where=outbox.c.sent_at.is_(None),
      sqlite_where=outbox.c.sent_at.is_(None))
Index("ix_outbox_sent", outbox.c.sent_at, postgresql_where=outbox.c.sent_at.is_not(None),
      sqlite_where=outbox.c.sent_at.is_not(None))

# Idempotent consumer: one row per (destination, event) whose effect is committed.
processed_messages = Table(
    "processed_messages",
    metadata,
    Column("destination", String(120), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("processed_at", UTCDateTime(), nullable=False, index=True),
)

# One row per batch flow (hub.messaging.scheduler): the schedule's cursor, the last completed run, and
# the lease of the run in progress (so that runs of one flow never overlap, across processes too).
flow_cursors = Table(
    "flow_cursors",
    metadata,
    Column("flow", String(120), primary_key=True),
    Column("last_run_at", UTCDateTime(), nullable=False),
    Column("delivered", BigInteger, nullable=False, default=0),
    Column("last_delivered_at", UTCDateTime()),
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime()),
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


# API keys (hub.security.keys): the secret only as a hash; a revoked key keeps its row (audit, names).
api_keys = Table(
    "api_keys",
    metadata,
    Column("name", String(80), primary_key=True),
    Column("key_id", String(24), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("channel", String(20)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
)

# Who did what, when, with what outcome (hub.security.audit): never secrets, tokens or personal data.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False, index=True),
    Column("who", String(200), nullable=False),
    Column("via", String(10), nullable=False),  # key | jwt | open | cli
    Column("action", String(120), nullable=False),
    Column("target", String(200)),
    Column("outcome", String(60), nullable=False),
)

# Live hub processes, each seen within a few heartbeats: the rate limit is shared out among them.
hub_processes = Table(
    "hub_processes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("seen_at", UTCDateTime(), nullable=False),
)
