"""History is pruned: partial indexes for unsent and sent outbox rows, an index on processed_at.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UNSENT = sa.text("sent_at IS NULL")
SENT = sa.text("sent_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_outbox_unsent", "outbox")
    op.create_index("ix_outbox_unsent", "outbox", ["seq"], postgresql_where=UNSENT, sqlite_where=UNSENT)
    op.create_index("ix_outbox_sent", "outbox", ["sent_at"], postgresql_where=SENT, sqlite_where=SENT)
    op.create_index("ix_processed_messages_processed_at", "processed_messages", ["processed_at"])


def downgrade() -> None:
    op.drop_index("ix_processed_messages_processed_at", "processed_messages")
    op.drop_index("ix_outbox_sent", "outbox")
    op.drop_index("ix_outbox_unsent", "outbox")
    op.create_index("ix_outbox_unsent", "outbox", ["sent_at", "seq"])
