"""Batch flows record their runs: the last completed run (`last_delivered_at`, null before the first),
and the lease of the run in progress (`lease_owner`, `lease_until`), so runs never overlap.

Before this revision a cursor held either the due time its schedule started from or the start of its
last run, which always has seconds or a fraction (a due time has neither): those are copied.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("flow_cursors", sa.Column("last_delivered_at", TS))
    op.add_column("flow_cursors", sa.Column("lease_owner", sa.String(64)))
    op.add_column("flow_cursors", sa.Column("lease_until", TS))
    cursors = sa.table("flow_cursors", sa.column("flow", sa.String), sa.column("last_run_at", TS),
                       sa.column("last_delivered_at", TS))
    bind = op.get_bind()
    for flow, last_run_at in bind.execute(sa.select(cursors.c.flow, cursors.c.last_run_at)).all():
        if last_run_at is not None and (last_run_at.second or last_run_at.microsecond):
            bind.execute(
                cursors.update().where(cursors.c.flow == flow).values(last_delivered_at=last_run_at)
            )


def downgrade() -> None:
    with op.batch_alter_table("flow_cursors") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
        batch.drop_column("last_delivered_at")
