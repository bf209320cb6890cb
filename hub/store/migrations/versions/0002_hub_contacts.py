"""The hub owns contacts; key kinds may be any system's name.

Contacts registered before this revision lived in the built-in CRM's crm_contacts: they are copied.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("customer_id", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS),
        sa.Column("outcome", sa.String(200)),
    )
    op.create_index("ix_contacts_customer_id", "contacts", ["customer_id"])
    if "crm_contacts" in sa.inspect(op.get_bind()).get_table_names():
        op.execute(
            "INSERT INTO contacts (id, customer_id, channel, started_at, ended_at, outcome) "
            "SELECT id, customer_id, channel, started_at, ended_at, outcome FROM crm_contacts"
        )
    with op.batch_alter_table("customer_keys") as batch:
        batch.alter_column("kind", type_=sa.String(60), existing_type=sa.String(20), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("customer_keys") as batch:
        batch.alter_column("kind", type_=sa.String(20), existing_type=sa.String(60), existing_nullable=False)
    op.drop_index("ix_contacts_customer_id", "contacts")
    op.drop_table("contacts")
