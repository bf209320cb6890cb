"""Built-in CM: profiles and offer learning. Adopts the tables when hub 0.1 created them already.

Revision ID: cm_0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "cm_0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "cm_profiles" not in existing:
        op.create_table(
            "cm_profiles",
            sa.Column("customer_id", sa.String(40), primary_key=True),
            sa.Column("state", sa.JSON, nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("updated_at", TS, nullable=False),
        )
    if "cm_offer_learning" not in existing:
        op.create_table(
            "cm_offer_learning",
            sa.Column("offer_id", sa.String(80), primary_key=True),
            sa.Column("shown", sa.BigInteger, nullable=False),
            sa.Column("accepted", sa.BigInteger, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("cm_offer_learning")
    op.drop_table("cm_profiles")
