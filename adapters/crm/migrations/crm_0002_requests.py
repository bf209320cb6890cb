"""Built-in CRM: customer requests and their status history; the products a customer holds.

Revision ID: crm_0002
Revises: crm_0001
"""
import sqlalchemy as sa
from alembic import op

revision = "crm_0002"
down_revision = "crm_0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("crm_customers", sa.Column("products", sa.JSON))
    op.create_table(
        "crm_requests",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("customer_id", sa.String(40), nullable=False),
        sa.Column("contact_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("details", sa.Text),
        sa.Column("offer_id", sa.String(80)),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_crm_requests_customer_id", "crm_requests", ["customer_id"])
    op.create_table(
        "crm_request_history",
        sa.Column("request_id", sa.String(40), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("by", sa.String(80), nullable=False),
        sa.Column("note", sa.String(500)),
    )


def downgrade() -> None:
    op.drop_table("crm_request_history")
    op.drop_table("crm_requests")
    with op.batch_alter_table("crm_customers") as table:  # SQLite drops a column by copying the table
        table.drop_column("products")
