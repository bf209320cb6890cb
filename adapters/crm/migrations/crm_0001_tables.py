"""Built-in CRM: customers and its contact log. Adopts the tables when hub 0.1 created them already.

Revision ID: crm_0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "crm_0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "crm_customers" not in existing:
        op.create_table(
            "crm_customers",
            sa.Column("id", sa.String(40), primary_key=True),
            sa.Column("name", sa.String(200)),
            sa.Column("emails", sa.JSON, nullable=False),
            sa.Column("phones", sa.JSON, nullable=False),
            sa.Column("attributes", sa.JSON, nullable=False),
            sa.Column("created_at", TS, nullable=False),
            sa.Column("updated_at", TS, nullable=False),
        )
    if "crm_contacts" not in existing:
        op.create_table(
            "crm_contacts",
            sa.Column("id", sa.String(40), primary_key=True),
            sa.Column("customer_id", sa.String(40), nullable=False),
            sa.Column("channel", sa.String(20), nullable=False),
            sa.Column("started_at", TS, nullable=False),
            sa.Column("ended_at", TS),
            sa.Column("outcome", sa.String(200)),
        )
        op.create_index("ix_crm_contacts_customer_id", "crm_contacts", ["customer_id"])


def downgrade() -> None:
    op.drop_table("crm_contacts")
    op.drop_table("crm_customers")
