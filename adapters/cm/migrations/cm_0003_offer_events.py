"""Built-in CM: the offer funnel's facts (propositions shown, responses), for reports.

Revision ID: cm_0003
Revises: cm_0002
"""
import sqlalchemy as sa
from alembic import op

revision = "cm_0003"
down_revision = "cm_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cm_offer_events",
        sa.Column("event_id", sa.String(80), primary_key=True),
        sa.Column("offer_id", sa.String(80), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_cm_offer_events_at", "cm_offer_events", ["at", "offer_id", "channel"])


def downgrade() -> None:
    op.drop_index("ix_cm_offer_events_at", "cm_offer_events")
    op.drop_table("cm_offer_events")
