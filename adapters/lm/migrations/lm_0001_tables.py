"""Built-in LM: leads and opt-outs.

Revision ID: lm_0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "lm_0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "lm_leads",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("code", sa.String(40), nullable=False, unique=True),
        sa.Column("campaign_id", sa.String(40)),
        sa.Column("customer_id", sa.String(40), nullable=False),
        sa.Column("offer_id", sa.String(80), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("decision_id", sa.String(120), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("retry_at", TS),
        sa.Column("claimed_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.Column("responded_at", TS),
        sa.Column("response", sa.String(20)),
        sa.Column("response_channel", sa.String(20)),
        sa.Column("detail", sa.String(500)),
    )
    op.create_index("ix_lm_leads_campaign_id", "lm_leads", ["campaign_id"])
    op.create_index("ix_lm_leads_due", "lm_leads", ["channel", "status", "created_at"])
    op.create_index("ix_lm_leads_claimed", "lm_leads", ["channel", "claimed_at"])
    op.create_table(
        "lm_optouts",
        sa.Column("customer_id", sa.String(40), primary_key=True),
        sa.Column("channel", sa.String(20), primary_key=True),
        sa.Column("at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lm_optouts")
    op.drop_table("lm_leads")
