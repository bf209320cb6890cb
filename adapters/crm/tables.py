"""The built-in CRM's own tables, on a MetaData of its own with its own migrations (migrations/)."""

from pathlib import Path

from sqlalchemy import JSON, Column, MetaData, String, Table

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
