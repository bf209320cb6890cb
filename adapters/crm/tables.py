"""The built-in CRM's own tables (separable from the hub's: prefix crm_)."""

from sqlalchemy import JSON, Column, String, Table

from hub.store.tables import UTCDateTime, metadata

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
