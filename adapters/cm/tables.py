"""The built-in CM's own tables, on a MetaData of its own with its own migrations (migrations/)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, MetaData, String, Table

from hub.ports import UTCDateTime

metadata = MetaData()
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# One row per customer CM knows: the policy state (hub_adapters.cm.policy.CustomerState as JSON) and
# a version for optimistic concurrency between hub processes.
cm_profiles = Table(
    "cm_profiles",
    metadata,
    Column("customer_id", String(40), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Propensity learning over all customers: shows and acceptances per offer, incremented atomically.
cm_offer_learning = Table(
    "cm_offer_learning",
    metadata,
    Column("offer_id", String(80), primary_key=True),
    Column("shown", BigInteger, nullable=False, default=0),
    Column("accepted", BigInteger, nullable=False, default=0),
)

# Outbound campaigns CM planned: which offer, over which channels, to whom, and how many leads it made.
cm_campaigns = Table(
    "cm_campaigns",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("offer_id", String(80), nullable=False),
    Column("segment_id", String(80)),
    Column("channels", JSON, nullable=False),
    Column("customer_ids", JSON, nullable=False),
    Column("planned", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

# The offer funnel: one row per proposition shown in a contact and per response to one, with the channel
# and when it happened (no customer: the counts are over all customers, like the learning counters, so an
# erasure leaves them). Keyed by the event id: an event counts once.
cm_offer_events = Table(
    "cm_offer_events",
    metadata,
    Column("event_id", String(80), primary_key=True),
    Column("offer_id", String(80), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("kind", String(20), nullable=False),  # SHOWN, or the response: ACCEPTED, REJECTED, LATER
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_cm_offer_events_at", "at", "offer_id", "channel"),
)
