"""Security: API keys (hashed; revoked, never deleted), the audit log, and the live hub processes (the
rate limit is shared out among them).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("name", sa.String(80), primary_key=True),
        sa.Column("key_id", sa.String(24), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("channel", sa.String(20)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("at", TS, nullable=False, index=True),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("via", sa.String(10), nullable=False),
        sa.Column("action", sa.String(120), nullable=False),
        sa.Column("target", sa.String(200)),
        sa.Column("outcome", sa.String(60), nullable=False),
    )
    op.create_table(
        "hub_processes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("seen_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hub_processes")
    op.drop_table("audit_log")
    op.drop_table("api_keys")
