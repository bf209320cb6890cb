"""Alembic environment for every component of the store: the hub's own tables and each adapter's.

Run through hub.store.db.migrate, which hands over the connection, the component's MetaData and its
version table (so an adapter's history never touches the hub's)."""

from alembic import context

attributes = context.config.attributes
connection = attributes.get("connection")
if connection is None:  # pragma: no cover - offline mode is not used
    raise RuntimeError("run migrations through `hub migrate` (hub.store.db.migrate)")

context.configure(
    connection=connection,
    target_metadata=attributes["metadata"],
    version_table=attributes["version_table"],
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
