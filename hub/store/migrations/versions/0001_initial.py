"""Initial tables: identity graph, outbox, processed messages, flow cursors, embedded queues.

(Until 0.2 this revision also created the built-in CRM's and CM's tables; they now come with their
adapters' own migrations, which adopt tables that already exist.)

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "customer_keys",
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("value", sa.String(320), primary_key=True),
        sa.Column("customer_id", sa.String(40), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_customer_keys_customer_id", "customer_keys", ["customer_id"])
    op.create_table(
        "outbox",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("type", sa.String(120), nullable=False),
        sa.Column("subject", sa.String(120)),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("ix_outbox_unsent", "outbox", ["sent_at", "seq"])
    op.create_table(
        "processed_messages",
        sa.Column("destination", sa.String(120), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("processed_at", TS, nullable=False),
    )
    op.create_table(
        "flow_cursors",
        sa.Column("flow", sa.String(120), primary_key=True),
        sa.Column("last_run_at", TS, nullable=False),
        sa.Column("delivered", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "bus_messages",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(120), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("available_at", TS, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("dead_at", TS),
    )
    op.create_index("ix_bus_messages_queue", "bus_messages", ["queue", "state", "seq"])


def downgrade() -> None:
    for table in ("bus_messages", "flow_cursors", "processed_messages", "outbox", "customer_keys", "customers"):
        op.drop_table(table)
