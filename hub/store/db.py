"""Engine creation and migrations (SQLite file by default, PostgreSQL by URL)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hub.config.settings import DB_MAX_OVERFLOW, DB_POOL_SIZE
from hub.store import privacy, sqlite
from hub.store.jsoncodec import CODEC
from hub.store.tables import metadata as hub_metadata

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_engine(
    url: str, *, pool_size: int = DB_POOL_SIZE, max_overflow: int = DB_MAX_OVERFLOW
) -> AsyncEngine:
    """The store's engine; on PostgreSQL a pool of `pool_size` kept connections, `max_overflow` more
    under a burst (HUB_DB_POOL_SIZE, HUB_DB_MAX_OVERFLOW)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return sqlite.create_engine(parsed)
    # No pre-ping (a round trip on every check-out): connections are recycled before a server or
    # firewall would drop them, and one that died anyway fails its statement, which invalidates the
    # pool (SQLAlchemy's disconnect handling) and is retried by the caller's own retry path.
    # Parameters (customers' keys, texts) stay out of error messages, and so out of logs and answers.
    return create_async_engine(
        url, hide_parameters=True, pool_size=pool_size, max_overflow=max_overflow, pool_recycle=1800, **CODEC
    )


def reading(engine: AsyncEngine) -> AsyncEngine:
    """The same pool for reads outside a transaction: in autocommit, so a read is one round trip (no
    BEGIN before it, no ROLLBACK when its connection goes back to the pool). SQLite begins nothing for
    a read anyway, and switching its isolation level costs a hop to its thread: as it is there."""
    if engine.dialect.name == "sqlite":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


@dataclass(frozen=True, slots=True)
class Component:
    """A part of the store with its own tables and Alembic history: the hub, or one adapter package."""

    name: str
    metadata: MetaData
    versions: Path

    @property
    def version_table(self) -> str:
        # The hub keeps Alembic's default table; each adapter has one of its own, so it can be
        # installed, upgraded or removed without touching the hub's history.
        return "alembic_version" if self.name == HUB else f"alembic_version_{self.name.replace('-', '_')}"


HUB = "hub"
HUB_COMPONENT = Component(HUB, hub_metadata, MIGRATIONS / "versions")
# The hub's privacy tables (hub.store.privacy): a history of their own, migrated with the hub's.
PRIVACY_COMPONENT = Component(privacy.COMPONENT_NAME, privacy.metadata, privacy.MIGRATIONS)


OWN = frozenset({HUB, PRIVACY_COMPONENT.name})


def alembic_config(component: Component) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(component.versions))
    cfg.attributes["metadata"] = component.metadata
    cfg.attributes["version_table"] = component.version_table
    return cfg


def _upgrade(connection: Connection, components: Sequence[Component]) -> None:
    for component in components:
        cfg = alembic_config(component)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")


async def migrate(engine: AsyncEngine, components: Sequence[Component] = ()) -> None:
    """Apply the hub's migrations, then each component's, up to head (idempotent; safe with several
    hub processes on PostgreSQL)."""
    wanted = [HUB_COMPONENT, PRIVACY_COMPONENT, *(c for c in components if c.name not in OWN)]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Two processes starting together must not both create the tables.
            await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7301001)")
        await conn.run_sync(_upgrade, wanted)
