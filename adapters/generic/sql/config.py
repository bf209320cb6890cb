"""The SQL adapter's config, as written under `systems.<name>.config` in hub.yaml.

Everything that can be checked without the database is checked here, at load, so a mistake is
reported as file:line: field: message. Messages never repeat the URL: it may hold a password.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from hub.ports import AdapterConfig, SecretStr

from .statement import check_identifier, check_query

KeyType = Literal["string", "integer"]


def parse_url(url: str) -> URL:
    """A SQLAlchemy URL with an installed async driver; ValueError (without the URL) otherwise."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError(
            "not a database URL; expected e.g. postgresql+asyncpg://user:${DB_PASSWORD}@host/db "
            "or sqlite+aiosqlite:///path/to/file.db"
        ) from None
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"unknown database dialect {parsed.drivername!r}") from None
    if not getattr(dialect, "is_async", False):
        raise ValueError(
            f"{parsed.drivername!r} is not an async driver: use e.g. postgresql+asyncpg or sqlite+aiosqlite"
        )
    try:
        dialect.import_dbapi()  # the driver package itself: better a load error than a start error
    except ImportError:
        raise ValueError(f"the driver for {parsed.drivername!r} is not installed") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError("an in-memory SQLite database holds no other system's data: give a file path")
    return parsed


class SqlConfig(AdapterConfig):
    """Either `table` (+ `schema`, `columns`) or `query`; `key_column` names the key in both."""

    url: SecretStr = Field(description="SQLAlchemy async URL; use ${ENV_VAR}, it may hold a password")
    table: str | None = None
    # `schema` is a BaseModel attribute, hence the alias.
    db_schema: str | None = Field(None, alias="schema")
    columns: list[str] | None = Field(None, min_length=1, description="select only these (table mode)")
    query: str | None = Field(None, description="one SELECT with `IN :keys`")
    key_column: str = Field(description="the column holding the system's key (email, customer id...)")
    # How keys are bound: table mode infers it from the key column's type; query mode cannot, and
    # asyncpg refuses a text parameter for an integer column.
    key_type: KeyType | None = None
    # `lower`: compare keys lower-cased (the hub lower-cases emails; a shop may not). In table mode
    # the adapter compares lower(key_column); in query mode the query must do so itself.
    key_match: Literal["exact", "lower"] = "exact"
    # Columns whose values are gathered over all rows of a key into a list (a join's many side, e.g.
    # the products of a customer's orders); any other column comes from the key's first row.
    collect: list[str] = Field(default_factory=list)
    # NUMERIC/DECIMAL values: `number` (JSON number: unified attributes and rules compare numbers;
    # beyond ~15 significant digits a float rounds) or `text` (exact, as the database wrote it).
    decimals: Literal["number", "text"] = "number"
    # Timestamps without a time zone are read in this zone; every timestamp is given as UTC ISO 8601.
    naive_timezone: str = "UTC"
    max_batch: int = Field(500, ge=1, le=10_000, description="keys per statement; more are chunked")
    pool_size: int = Field(5, ge=1, le=100)
    max_overflow: int = Field(5, ge=0, le=100)

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        parse_url(v.get_secret_value())
        return v

    @field_validator("table", "db_schema", "key_column")
    @classmethod
    def _identifier(cls, v: str | None) -> str | None:
        return None if v is None else check_identifier(v)

    @field_validator("columns", "collect")
    @classmethod
    def _identifiers(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        for name in v:
            check_identifier(name)
        if len(set(v)) != len(v):
            raise ValueError("a column is named twice")
        return v

    @field_validator("query")
    @classmethod
    def _query(cls, v: str | None) -> str | None:
        return None if v is None else check_query(v)

    @field_validator("naive_timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        zone_of(v)
        return v

    @model_validator(mode="after")
    def _one_source(self) -> SqlConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table or query")
        if self.query is not None and (self.db_schema is not None or self.columns is not None):
            raise ValueError("schema and columns go with table; a query selects its own columns")
        if self.columns is not None:
            missing = [c for c in self.collect if c not in self.columns]
            if missing:
                raise ValueError(f"collect names columns that columns leaves out: {', '.join(missing)}")
        if self.key_column in self.collect:
            raise ValueError("the key column cannot be collected")
        return self

    @property
    def sqlalchemy_url(self) -> URL:
        return parse_url(self.url.get_secret_value())

    @property
    def zone(self) -> tzinfo:
        return zone_of(self.naive_timezone)


def zone_of(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC  # no tz database needed for the default
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Amsterdam)") from None
