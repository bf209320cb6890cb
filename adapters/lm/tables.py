"""The built-in LM's own tables, on a MetaData of its own with its own migrations (migrations/)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, Index, Integer, MetaData, String, Table

from hub.ports import UTCDateTime

metadata = MetaData()
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

lm_leads = Table(
    "lm_leads",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("code", String(40), nullable=False, unique=True),
    Column("campaign_id", String(40), index=True),
    Column("customer_id", String(40), nullable=False),
    Column("offer_id", String(80), nullable=False),
    Column("title", String(200), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("decision_id", String(120), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("retry_at", UTCDateTime()),
    Column("claimed_at", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
    Column("responded_at", UTCDateTime()),
    Column("response", String(20)),
    Column("response_channel", String(20)),
    Column("detail", String(500)),
    # The due leads of a channel, oldest first; and what a channel used of its capacity lately.
    Index("ix_lm_leads_due", "channel", "status", "created_at"),
    Index("ix_lm_leads_claimed", "channel", "claimed_at"),
)

# Customers who unsubscribed from a channel (the email's unsubscribe link), or withheld their marketing
# consent for it: LM sends them no more. `reason` is what a lead not sent says (null: unsubscribed).
lm_optouts = Table(
    "lm_optouts",
    metadata,
    Column("customer_id", String(40), primary_key=True),
    Column("channel", String(20), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("reason", String(200)),
)
