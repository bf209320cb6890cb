"""Alembic environment: always run with a connection handed over by hub.store.db.migrate."""

from alembic import context

from hub.store.schema import target_metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - offline mode is not used
    raise RuntimeError("run migrations through `hub migrate` (hub.store.db.migrate)")

context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
