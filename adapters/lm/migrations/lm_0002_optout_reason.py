"""Built-in LM: why a customer gets no more leads over a channel (an unsubscription, or consent withheld).

Revision ID: lm_0002
Revises: lm_0001
"""
import sqlalchemy as sa
from alembic import op

revision = "lm_0002"
down_revision = "lm_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("lm_optouts", sa.Column("reason", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("lm_optouts") as batch:
        batch.drop_column("reason")
