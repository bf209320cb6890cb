"""The metadata Alembic compares against: the hub's tables plus those of installed built-in adapters."""

from __future__ import annotations

from sqlalchemy import MetaData

from hub.store.tables import metadata


def load_all() -> MetaData:
    # Built-in adapters define their tables on the hub's metadata when imported (entry points keep
    # the store from naming any concrete adapter).
    from hub.registry import adapter_factories

    for ep in adapter_factories().values():
        ep.load()
    return metadata


target_metadata = load_all()
