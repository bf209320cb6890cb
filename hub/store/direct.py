"""Hot statements straight to the driver on PostgreSQL, inside SQLAlchemy's connection and transaction.

insert_rows: many rows into one table in one statement, for the hot paths' inserts, inside the caller's
transaction; optionally skipping rows that conflict, and answering the rows inserted. fetch_rows: a
statement built once at import (a read, or DML), run as SQLAlchemy compiled it.

On PostgreSQL the rows go straight to asyncpg on the connection SQLAlchemy holds, in the transaction
SQLAlchemy has begun there: SQLAlchemy's own executemany costs about 120 µs of CPU more per statement
(its DBAPI adapter, execution context and greenlet hops; bench/RESULTS.md), and each group of started
contacts runs six such inserts. Plain rows go to asyncpg's executemany; rows whose inserted keys come
back go as one array per column (`INSERT … SELECT * FROM unnest($1::type[], …) … RETURNING`), one
statement and one prepared plan for any number of rows. What stays the same:
- the values go through the columns' own bind processing (TypeDecorators included);
- a column left out gets its scalar default, as SQLAlchemy would give it;
- errors come back as SQLAlchemy's (a duplicate key is an IntegrityError);
- the rows are in the caller's transaction: when theirs is its first statement, SQLAlchemy's adapter
  is asked to begin it (`_in_transaction`); outside a transaction SQLAlchemy has begun, they take
  SQLAlchemy's own path;
- whoever watches SQLAlchemy's statements (a `before_cursor_execute` listener: tracing, a kit counting
  a system's calls) sees them all: with one listening, every statement takes SQLAlchemy's path.
Other backends: SQLAlchemy's executemany (with ON CONFLICT and RETURNING, as SQLite spells them too).
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

_Processor = Callable[[Any], Any] | None
T = TypeVar("T")
SKIP_CONFLICTS = ()  # `conflict=SKIP_CONFLICTS`: a row that conflicts with any unique key is left out


@dataclass(frozen=True, slots=True)
class _Insert:
    sql: str
    keys: tuple[str, ...]  # the row's keys, in the statement's order
    processors: tuple[_Processor, ...]
    defaults: tuple[Any, ...]  # the scalar defaults of the columns left out, in the statement's order
    row: Any  # the namedtuple of the returned columns (None: nothing returned)
    results: tuple[_Processor, ...]
    statement: Any  # SQLAlchemy's, for its own path (built once: building one costs more than running it)


_PlanKey = tuple[Table, tuple[str, ...], tuple[str, ...] | None, tuple[str, ...], str, str]
_PLANS: dict[_PlanKey, _Insert] = {}


async def insert_rows(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    conflict: Sequence[str] | None = None,
    returning: Sequence[str] = (),
) -> list[Any]:
    """Insert `rows` (each with the same keys: column names) into `table`. `conflict`: leave out the
    rows that conflict on these columns' unique key (SKIP_CONFLICTS: on any). `returning`: the columns
    of the rows inserted, answered as rows (attributes by column name); else nothing is answered."""
    if not rows:
        return []
    target = None if conflict is None else tuple(conflict)
    plan = _plan(table, tuple(rows[0]), target, tuple(returning), conn.dialect)  # checks the names too
    driver = await _driver(conn)
    if driver is not None and await _in_transaction(conn, driver):
        return await _run(driver, plan, rows)
    result = await conn.execute(plan.statement, list(rows) if len(rows) > 1 else dict(rows[0]))
    return list(result) if returning else []


async def _driver(conn: AsyncConnection) -> asyncpg.Connection | None:
    """The asyncpg connection under `conn`, unless the statement should take SQLAlchemy's path: another
    backend, or someone listening to SQLAlchemy's statements."""
    sync = conn.sync_connection
    if conn.dialect.name != "postgresql" or sync is None or sync.dispatch.before_cursor_execute:
        return None
    driver = (await conn.get_raw_connection()).driver_connection
    return driver if isinstance(driver, asyncpg.Connection) else None


async def _in_transaction(conn: AsyncConnection, driver: asyncpg.Connection) -> bool:
    """Whether the driver is in the transaction SQLAlchemy has begun on `conn`. SQLAlchemy's asyncpg
    adapter sends BEGIN only with the connection's first statement; when that statement is one of these,
    the adapter is asked to begin here, as it would itself (its isolation level, its bookkeeping: its
    commit and rollback end this transaction). If it cannot, the statement takes SQLAlchemy's path, which
    begins the transaction, or reports why not, as it always does."""
    if driver.is_in_transaction():
        return True
    if not conn.in_transaction():
        return False  # not begun by SQLAlchemy: nobody would commit what the driver began
    adapted = (await conn.get_raw_connection()).dbapi_connection
    begin = getattr(adapted, "_start_transaction", None)
    if begin is None or getattr(adapted, "_transaction", True) is not None:
        return False
    try:
        await begin()
    except Exception:  # SQLAlchemy's own path begins again, and reports a failure its way
        return False
    return bool(driver.is_in_transaction())


async def _run(driver: asyncpg.Connection, plan: _Insert, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    pairs = tuple(zip(plan.keys, plan.processors, strict=True))
    defaults = plan.defaults
    values = [(*(_bound(row[key], p) for key, p in pairs), *defaults) for row in rows]
    if plan.row is None:
        await _answered(plan.sql, driver.executemany(plan.sql, values))
        return []
    columns = (list(column) for column in zip(*values, strict=True))  # one array per column: unnest
    return _rows(plan.row, plan.results, await _answered(plan.sql, driver.fetch(plan.sql, *columns)))


async def _answered(sql: str, call: Awaitable[T]) -> T:
    """The driver's answer, its errors as SQLAlchemy's (a duplicate key is an IntegrityError)."""
    try:
        return await call
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(sql, None, exc) from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DBAPIError(sql, None, exc) from exc


def _rows(row: Any, results: tuple[_Processor, ...], found: Sequence[Any]) -> list[Any]:
    """The driver's records as rows by attribute and position, through the columns' result processing."""
    return [row(*(_bound(v, p) for v, p in zip(r, results, strict=True))) for r in found]


def _bound(value: Any, process: _Processor) -> Any:
    """A value through a column's bind or result processing (never applied to NULL)."""
    return value if process is None or value is None else process(value)


def _plan(
    table: Table, keys: tuple[str, ...], conflict: tuple[str, ...] | None, returning: tuple[str, ...],
    dialect: Dialect,
) -> _Insert:
    key = (table, keys, conflict, returning, dialect.name, dialect.driver)  # processors are the backend's
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _make_plan(table, keys, conflict, returning, dialect)
    return plan


def _make_plan(
    table: Table, keys: tuple[str, ...], conflict: tuple[str, ...] | None, returning: tuple[str, ...],
    dialect: Dialect,
) -> _Insert:
    unknown = [k for k in (*keys, *(conflict or ()), *returning) if k not in table.c]
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
    if returning:
        # One array per column. The element type without a length: a cast to VARCHAR(40) would cut a
        # longer value quietly, where the column refuses it.
        arrays = ", ".join(
            f"${n}::{_unsized(c.type.compile(dialect=dialect))}[]" for n, c in enumerate(columns, 1)
        )
        rows = f"SELECT * FROM unnest({arrays})"
    else:
        rows = "VALUES (" + ", ".join(f"${n}" for n in range(1, len(columns) + 1)) + ")"
    sql = f"INSERT INTO {preparer.format_table(table)} ({names}) {rows}"
    if conflict is not None:
        target = f" ({', '.join(preparer.quote(table.c[c].name) for c in conflict)})" if conflict else ""
        sql += f" ON CONFLICT{target} DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join(preparer.quote(table.c[c].name) for c in returning)
    processors = tuple(table.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in keys)
    defaults = []
    for column in left_out:
        value = column.default.arg  # type: ignore[union-attr]
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        defaults.append(_bound(value, process))
    row = _row_class([table.c[c] for c in returning])
    upsert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert  # both spell ON CONFLICT
    statement: Any = table.insert() if conflict is None else upsert(table)
    if conflict is not None:
        statement = statement.on_conflict_do_nothing(index_elements=list(conflict) or None)
    if returning:
        statement = statement.returning(*(table.c[c] for c in returning))
    results = tuple(
        table.c[c].type.dialect_impl(dialect).result_processor(dialect, None) for c in returning
    )
    return _Insert(sql, keys, processors, tuple(defaults), row, results, statement)


def _unsized(type_sql: str) -> str:
    return re.sub(r"\(\d+\)", "", type_sql)


@dataclass(frozen=True, slots=True)
class _Statement:
    sql: str
    names: tuple[str, ...]  # the bound parameters, in positional order
    processors: tuple[_Processor, ...]
    compiled: Any  # SQLAlchemy's compiled form: the values bound in the statement itself
    row: Any  # a namedtuple of the selected (or returned) columns; None: nothing comes back
    results: tuple[_Processor, ...]


_STATEMENTS: dict[tuple[Any, str, str], _Statement | None] = {}
KEPT_STATEMENTS = 256  # statements built once at import: a handful; more means a caller builds per call


async def fetch_rows(
    conn: AsyncConnection, statement: Any, params: Mapping[str, Any] | None = None
) -> list[Any]:
    """Run `statement` (a SELECT, or a DML statement, with or without RETURNING) and answer its rows
    (attributes by column name; none for DML without RETURNING). For the hot paths' statements built once
    at import: on PostgreSQL they go to asyncpg as SQLAlchemy compiled them, when the connection is in
    autocommit (a reader) or its transaction has begun; else, and elsewhere, through SQLAlchemy."""
    driver = await _driver(conn)
    if driver is not None:
        plan = _statement(statement, conn.dialect)
        options = conn.sync_connection.get_execution_options() if conn.sync_connection else {}
        reader = options.get("isolation_level") == "AUTOCOMMIT"
        if plan is not None and (reader or await _in_transaction(conn, driver)):
            return await _fetch(driver, plan, params or {})
    result = await conn.execute(statement, dict(params or {}))
    return list(result) if result.returns_rows else []


async def _fetch(driver: asyncpg.Connection, plan: _Statement, params: Mapping[str, Any]) -> list[Any]:
    values = plan.compiled.construct_params(params) if params else plan.compiled.construct_params()
    args = [_bound(values[n], p) for n, p in zip(plan.names, plan.processors, strict=True)]
    found = await _answered(plan.sql, driver.fetch(plan.sql, *args))
    return [] if plan.row is None else _rows(plan.row, plan.results, found)


def _statement(statement: Any, dialect: Dialect) -> _Statement | None:
    key = (statement, dialect.name, dialect.driver)
    try:
        return _STATEMENTS[key]
    except KeyError:
        pass
    plan = _compile(statement, dialect)
    if len(_STATEMENTS) < KEPT_STATEMENTS:
        _STATEMENTS[key] = plan
    return plan


def _compile(statement: Any, dialect: Dialect) -> _Statement | None:
    """None for what takes SQLAlchemy's own path: an expanding IN (its SQL differs per list length)."""
    compiled = statement.compile(dialect=dialect)
    binds = compiled.binds
    if any(b.expanding for b in binds.values()) or compiled.positiontup is None:
        return None
    names = tuple(compiled.positiontup)
    processors = tuple(binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names)
    # A SELECT's columns, or the columns a DML statement returns (none without RETURNING).
    selected = getattr(statement, "selected_columns", None)
    columns = list(selected if selected is not None else getattr(statement, "exported_columns", None) or ())
    results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
    return _Statement(compiled.string, names, processors, compiled, _row_class(columns), results)


def _row_class(columns: Sequence[Any]) -> Any:
    """Rows by attribute and by position; None when nothing comes back."""
    return namedtuple("Row", [c.key for c in columns], rename=True) if columns else None  # type: ignore[misc]
