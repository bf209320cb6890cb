"""insert_rows: many rows into one table in one statement, for the hot paths' plain inserts (no
RETURNING), inside the caller's transaction.

On PostgreSQL the rows go straight to asyncpg's executemany on the connection SQLAlchemy holds, in the
transaction SQLAlchemy has begun there: SQLAlchemy's own executemany costs about 120 µs of CPU more per
statement (its DBAPI adapter, execution context and greenlet hops; bench/RESULTS.md), and each group of
started contacts runs four such inserts. What stays the same:
- the values go through the columns' own bind processing (TypeDecorators included);
- a column left out gets its scalar default, as SQLAlchemy would give it;
- errors come back as SQLAlchemy's (a duplicate key is an IntegrityError);
- the rows are in the caller's transaction: before SQLAlchemy has begun it on the connection (no
  statement ran there yet), they take SQLAlchemy's own path, which begins it.
Other backends: SQLAlchemy's executemany.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Insert:
    sql: str
    keys: tuple[str, ...]  # the row's keys, in the statement's order
    processors: tuple[_Processor, ...]
    defaults: tuple[Any, ...]  # the scalar defaults of the columns left out, in the statement's order


_PLANS: dict[tuple[Table, tuple[str, ...], str, str], _Insert] = {}


async def insert_rows(conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` (each with the same keys: column names) into `table`."""
    if not rows:
        return
    plan = _plan(table, tuple(rows[0]), conn.dialect)  # also where a row names no column of the table
    if conn.dialect.name == "postgresql":
        driver = (await conn.get_raw_connection()).driver_connection
        if isinstance(driver, asyncpg.Connection) and driver.is_in_transaction():
            await _executemany(driver, plan, rows)
            return
    await conn.execute(table.insert(), list(rows))


async def _executemany(driver: asyncpg.Connection, plan: _Insert, rows: Sequence[Mapping[str, Any]]) -> None:
    pairs = tuple(zip(plan.keys, plan.processors, strict=True))
    defaults = plan.defaults
    values = [
        (*(v if (v := row[key]) is None or p is None else p(v) for key, p in pairs), *defaults)
        for row in rows
    ]
    try:
        await driver.executemany(plan.sql, values)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(plan.sql, None, exc) from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DBAPIError(plan.sql, None, exc) from exc


def _plan(table: Table, keys: tuple[str, ...], dialect: Dialect) -> _Insert:
    key = (table, keys, dialect.name, dialect.driver)  # a bind processor is the backend's own
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _make_plan(table, keys, dialect)
    return plan


def _make_plan(table: Table, keys: tuple[str, ...], dialect: Dialect) -> _Insert:
    unknown = [k for k in keys if k not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column {', '.join(unknown)}")
    left_out = []
    for column in table.c:
        if column.key in keys or column.default is None:
            continue
        if not column.default.is_scalar:  # a callable or a SQL default: give the value in the rows
            raise ValueError(f"{table.name}.{column.key} has a default insert_rows cannot make: give it")
        left_out.append(column)
    columns = [table.c[k] for k in keys] + left_out
    preparer = dialect.identifier_preparer
    names = ", ".join(preparer.quote(c.name) for c in columns)
    places = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    processors = tuple(table.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in keys)
    defaults = []
    for column in left_out:
        value = column.default.arg  # type: ignore[union-attr]
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        defaults.append(process(value) if process is not None and value is not None else value)
    sql = f"INSERT INTO {preparer.format_table(table)} ({names}) VALUES ({places})"
    return _Insert(sql, keys, processors, tuple(defaults))
