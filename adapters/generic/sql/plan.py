"""The one statement the adapter runs per batch of keys, built once from the config and the database.

Table mode reflects the table, so a missing table or column is an error at start naming it, and the
key column's type decides how keys are bound. Query mode cannot be reflected: the query is run once
with no keys, which checks it against the database and tells its column names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, MetaData, String, Table, bindparam, cast, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import NoSuchTableError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement, Executable
from sqlalchemy.types import TypeEngine

from .config import KeyType, SqlConfig
from .statement import KEYS_PARAM

# A key bound to an integer column: at most 18 digits, so it fits a BIGINT (a longer one matches nothing).
_WHOLE_NUMBER = re.compile(r"^[+-]?\d{1,18}$")


class PlanError(Exception):
    """The database does not have what the config names. The message names tables and columns only."""


@dataclass(frozen=True, slots=True)
class Plan:
    statement: Executable
    key_type: KeyType
    lower: bool
    describe: str  # for logs and health: "table public.customers" or "query"

    def bound(self, key: str) -> Any | None:
        """What a requested key is bound as, or None when it cannot match (text for an integer key)."""
        if self.key_type == "integer":
            stripped = key.strip()
            return int(stripped) if _WHOLE_NUMBER.match(stripped) else None
        return key.lower() if self.lower else key

    def row_key(self, raw: Any) -> Any | None:
        """A row's key in the form `bound` gives, so rows find the keys that asked for them."""
        if self.key_type == "integer":
            try:
                return int(raw)
            except (TypeError, ValueError):
                return None
        as_text = str(raw)
        return as_text.lower() if self.lower else as_text


def _keys(key_type: KeyType) -> Any:
    # Expanding: one placeholder per key, rendered per execution, so a batch is one statement.
    return bindparam(KEYS_PARAM, expanding=True, type_=Integer() if key_type == "integer" else String())


def _python_type(t: TypeEngine[Any]) -> type | None:
    try:
        return t.python_type
    except NotImplementedError:
        return None


def _reflect(sync_conn: Connection, cfg: SqlConfig) -> Plan:
    assert cfg.table is not None
    where = f"{cfg.db_schema}.{cfg.table}" if cfg.db_schema else cfg.table
    try:
        table = Table(cfg.table, MetaData(), schema=cfg.db_schema, autoload_with=sync_conn)
    except NoSuchTableError:
        raise PlanError(f"table {where!r} not found") from None
    wanted = list(dict.fromkeys([cfg.key_column, *(cfg.columns or table.c.keys()), *cfg.collect]))
    missing = [name for name in wanted if name not in table.c]
    if missing:
        raise PlanError(f"table {where!r} has no column {', '.join(repr(m) for m in missing)}")
    key = table.c[cfg.key_column]
    python_type = _python_type(key.type)
    key_type: KeyType = cfg.key_type or ("integer" if python_type is int else "string")
    target: ColumnElement[Any] = key
    if key_type == "string":
        if python_type is not str:
            # A UUID or other typed key is compared as its text: correct everywhere, if unindexed.
            target = cast(key, String())
        if cfg.key_match == "lower":
            target = func.lower(target)
    statement = select(*(table.c[name] for name in wanted)).where(target.in_(_keys(key_type)))
    lower = cfg.key_match == "lower" and key_type == "string"
    return Plan(statement, key_type, lower, f"table {where}")


async def build(conn: AsyncConnection, cfg: SqlConfig) -> Plan:
    """The plan for this config, checked against the database (PlanError when it does not fit)."""
    if cfg.table is not None:
        return await conn.run_sync(_reflect, cfg)
    assert cfg.query is not None
    key_type: KeyType = cfg.key_type or "string"
    statement = text(cfg.query).bindparams(_keys(key_type))
    plan = Plan(statement, key_type, cfg.key_match == "lower" and key_type == "string", "query")
    await probe(conn, plan, cfg)
    return plan


async def probe(conn: AsyncConnection, plan: Plan, cfg: SqlConfig) -> None:
    """Run the statement for no keys: the database checks tables, columns and syntax, cheaply."""
    result = await conn.execute(plan.statement, {KEYS_PARAM: []})
    names = list(result.keys())
    result.close()
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:  # a record is keyed by column name: two columns of one name would shadow each other
        listed = ", ".join(repr(t) for t in twice)
        raise PlanError(f"the {plan.describe} returns {listed} twice: name each column (AS ...)")
    missing = [name for name in (cfg.key_column, *cfg.collect) if name not in names]
    if missing:
        listed = ", ".join(repr(m) for m in missing)
        raise PlanError(f"the {plan.describe} returns no column {listed} (key_column/collect name it)")
