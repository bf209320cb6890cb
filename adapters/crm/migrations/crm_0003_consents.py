"""Built-in CRM: customers' consents per purpose and channel.

Revision ID: crm_0003
Revises: crm_0002
"""
import sqlalchemy as sa
from alembic import op

revision = "crm_0003"
down_revision = "crm_0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "crm_consents",
        sa.Column("customer_id", sa.String(40), primary_key=True),
        sa.Column("purpose", sa.String(20), primary_key=True),
        sa.Column("channel", sa.String(20), primary_key=True),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("source", sa.String(60), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("crm_consents")
