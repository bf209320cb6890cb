"""The built-in CRM's own tables, on a MetaData of its own with its own migrations (migrations/)."""

from pathlib import Path

from sqlalchemy import JSON, Boolean, Column, Integer, MetaData, String, Table, Text

from hub.ports import UTCDateTime

metadata = MetaData()
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

crm_customers = Table(
    "crm_customers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200)),
    Column("emails", JSON, nullable=False),
    Column("phones", JSON, nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("products", JSON),  # what the customer holds (offer ids): closed sales, completed quotes
)

# The CRM's log of the contacts it was told about (the hub owns the contacts themselves).
crm_contacts = Table(
    "crm_contacts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("customer_id", String(40), nullable=False, index=True),
    Column("channel", String(20), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
    Column("outcome", String(200)),
)

# Customer requests (quote, service, complaint): the current status here, every status in the history.
crm_requests = Table(
    "crm_requests",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("customer_id", String(40), nullable=False, index=True),
    Column("contact_id", String(40), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("details", Text),
    Column("offer_id", String(80)),
    Column("status", String(30), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

crm_request_history = Table(
    "crm_request_history",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("status", String(30), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("by", String(80), nullable=False),
    Column("note", String(500)),
)

# Consents per purpose (MARKETING, PROFILING) and channel ("*": every channel); the newest statement wins.
crm_consents = Table(
    "crm_consents",
    metadata,
    Column("customer_id", String(40), primary_key=True),
    Column("purpose", String(20), primary_key=True),
    Column("channel", String(20), primary_key=True),
    Column("granted", Boolean, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("source", String(60), nullable=False),
)
