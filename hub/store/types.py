"""Column types and statements every table of the store uses, the hub's and the adapters' alike."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    Select,
    String,
    Table,
    TypeDecorator,
    bindparam,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from hub.model.report import Period

_Query = TypeVar("_Query", bound=Select[Any])
_Stmt = TypeVar("_Stmt")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for long-lived sequences.
Seq = BigInteger().with_variant(Integer(), "sqlite")


class AnyOf(ColumnElement[bool]):
    """`column IN (the list bound as `key` at execution)`. PostgreSQL gets `column = ANY($1)`: one array
    parameter, so one SQL text and one prepared statement for any number of values. SQLAlchemy's
    expanding IN, which the other backends get, renders a placeholder per value at every execution
    (3.5 % of startContact's CPU) and makes a new prepared statement for every list length."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a comparison: no "= 1" after it where booleans are integers
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("key", InternalTraversal.dp_string),
    ]

    def __init__(self, column: ColumnElement[Any], key: str):
        self.column = column
        self.key = key


def any_of(column: ColumnElement[Any], key: str) -> AnyOf:
    return AnyOf(column, key)


@compiles(AnyOf)
def _expanding_in(element: AnyOf, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column.in_(bindparam(element.key, expanding=True)), **kw))


@compiles(AnyOf, "postgresql")
def _equals_any(element: AnyOf, compiler: Any, **kw: Any) -> str:
    item = element.column.type
    if isinstance(item, String) and item.length is not None:
        item = String()  # a cast to VARCHAR(40)[] would cut a longer value to a prefix that matches
    values = bindparam(element.key, type_=postgresql.ARRAY(item))
    return f"{compiler.process(element.column, **kw)} = ANY ({compiler.process(values, **kw)})"


def dialect_insert(conn: AsyncConnection, table: Table) -> postgresql.Insert:
    """INSERT that supports ON CONFLICT on the connection's backend (PostgreSQL and SQLite spell it alike)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return cast(postgresql.Insert, sqlite.insert(table))


class PerDialect(Generic[_Stmt]):
    """A statement built once per backend, for the hot paths: building one per call (coercions, the
    cache key of its values) costs SQLAlchemy more CPU than running it. Give it the parameters at
    execution instead. `build` gets `dialect_insert` bound to the connection's backend."""

    def __init__(self, build: Callable[[Callable[[Table], postgresql.Insert]], _Stmt]):
        self._build = build
        self._built: dict[str, _Stmt] = {}

    def __call__(self, conn: AsyncConnection) -> _Stmt:
        name = conn.dialect.name
        stmt = self._built.get(name)
        if stmt is None:
            stmt = self._built[name] = self._build(lambda table: dialect_insert(conn, table))
        return stmt


def within(query: _Query, column: ColumnElement[Any], period: Period) -> _Query:
    """The query held to [period.start, period.end) on `column`; an open side adds nothing."""
    if period.start is not None:
        query = query.where(column >= period.start)
    if period.end is not None:
        query = query.where(column < period.end)
    return query
