"""Privacy: requests (erasure, export), each system's receipt, tombstones of erased customers.

Revision ID: privacy_0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "privacy_0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("customer_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("identity_keys", sa.JSON),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("completed_at", TS),
    )
    op.create_index("ix_privacy_requests_customer", "privacy_requests", ["customer_id", "kind"])
    op.create_table(
        "privacy_receipts",
        sa.Column("request_id", sa.String(40), primary_key=True),
        sa.Column("system", sa.String(60), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("detail", sa.String(500)),
        sa.Column("at", TS),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("final", sa.Boolean, nullable=False),
        sa.Column("part", sa.JSON),
    )
    op.create_table(
        "privacy_tombstones",
        sa.Column("customer_id", sa.String(40), primary_key=True),
        sa.Column("request_id", sa.String(40), nullable=False),
        sa.Column("erased_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("privacy_tombstones")
    op.drop_table("privacy_receipts")
    op.drop_table("privacy_requests")
