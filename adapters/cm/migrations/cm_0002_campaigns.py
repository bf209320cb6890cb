"""Built-in CM: outbound campaigns.

Revision ID: cm_0002
Revises: cm_0001
"""
import sqlalchemy as sa
from alembic import op

revision = "cm_0002"
down_revision = "cm_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cm_campaigns",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("offer_id", sa.String(80), nullable=False),
        sa.Column("segment_id", sa.String(80)),
        sa.Column("channels", sa.JSON, nullable=False),
        sa.Column("customer_ids", sa.JSON, nullable=False),
        sa.Column("planned", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cm_campaigns")
