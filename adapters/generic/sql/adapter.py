"""The generic SQL adapter: a table or a query of another database as a profile source, by YAML alone.

Reads only: one statement per batch of keys, in a read-only transaction where the database has one,
bounded by the system's timeout. Every failure is an AdapterError naming the system with a short
message (no SQL, parameters or URL); the log gets the driver's first line with the secrets removed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hub.ports import AdapterContext, AdapterError, Health, ProfileSource, Record

from . import plan as plans
from .config import SqlConfig
from .errors import Redactor, first_line, kind
from .plan import Plan, PlanError
from .rows import Converter, gather
from .statement import KEYS_PARAM

T = TypeVar("T")
# asyncpg closes a connection gracefully within 2 s, then drops it: closing waits at most this long.
_CLEANUP_BOUND = 3.0


class SqlAdapter:
    """Entry point `sql`: see mappings/examples/sql/README.md."""

    ports: ClassVar[tuple[type, ...]] = (ProfileSource,)
    Config: ClassVar[type[SqlConfig]] = SqlConfig

    def __init__(self, ctx: AdapterContext):
        self.system = ctx.system
        config = ctx.config
        # The registry hands a validated SqlConfig; a plain dict (a test, a script) is validated here.
        self._config = config if isinstance(config, SqlConfig) else SqlConfig.model_validate(config)
        self._timeout = ctx.timeout
        self._log: logging.Logger = ctx.log
        raw_url = self._config.url.get_secret_value()
        self._url = _resolve_sqlite_path(self._config.sqlalchemy_url, ctx.mappings_dir)
        self._redactor = Redactor.of(self._url, raw_url)
        self._convert = Converter(self._config.decimals, self._config.zone)
        self._engine: AsyncEngine | None = None
        self._plan: Plan | None = None
        self._plan_lock = asyncio.Lock()
        self._cleanups: set[asyncio.Future[Any]] = set()  # reads cut off by a timeout, still closing

    def __repr__(self) -> str:
        where = self._plan.describe if self._plan else (self._config.table or "query")
        return f"SqlAdapter(system={self.system!r}, url={self.safe_url!r}, reads={where!r})"

    @property
    def safe_url(self) -> str:
        return self._url.render_as_string(hide_password=True)

    @property
    def engine(self) -> AsyncEngine | None:
        """The adapter's engine once started (tests count its statements; diagnostics read its pool)."""
        return self._engine

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the engine and check the table or query against the database. A failure raises
        AdapterError; the hub then serves without this system, and `fetch` tries again."""
        if self._engine is None:
            self._engine = self._create_engine()
        plan = await self._bounded("start", self._ready())
        self._log.info("system %s: reading %s from %s", self.system, plan.describe, self.safe_url)

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        self._plan = None
        if self._cleanups:  # let cut-off reads hand their connections back before the pool goes
            await asyncio.wait(set(self._cleanups), timeout=_CLEANUP_BOUND)
        if engine is not None:
            await engine.dispose()

    async def check(self) -> Health:
        """Connect, and run the statement for no keys (the table and columns still exist): never
        raises, and a dead database answers within the system's timeout."""
        try:
            plan = await self._bounded("check", self._check())
        except AdapterError as exc:
            return Health(False, str(exc))
        return Health(True, f"{self._url.get_backend_name()} reachable; reads {plan.describe}")

    async def _check(self) -> Plan:
        plan = await self._ready()
        async with self._connection() as conn:
            await self._run("check", conn.execute(text("SELECT 1")))
            await self._run("check", plans.probe(conn, plan, self._config))
        return plan

    # --- ProfileSource -----------------------------------------------------------------------------

    async def fetch(self, keys: Sequence[str]) -> Mapping[str, Record]:
        """Records by the requested key: one statement per `max_batch` keys; unknown keys left out."""
        return await self._bounded("read", self._fetch(keys))

    async def _fetch(self, keys: Sequence[str]) -> dict[str, Record]:
        plan = await self._ready()
        asked: dict[Any, list[str]] = {}  # bound value -> the requested keys it answers
        for key in dict.fromkeys(str(k) for k in keys):
            bound = plan.bound(key)
            if bound is not None:
                asked.setdefault(bound, []).append(key)
        if not asked:
            return {}
        bounds = list(asked)
        size = self._config.max_batch
        found: dict[Any, dict[str, Any]] = {}
        async with self._connection() as conn:
            for i in range(0, len(bounds), size):
                found.update(await self._run("read", self._batch(conn, plan, bounds[i : i + size])))
        return {key: record for bound, record in found.items() for key in asked.get(bound, ())}

    async def _batch(self, conn: AsyncConnection, plan: Plan, bounds: list[Any]) -> dict[Any, dict[str, Any]]:
        result = await conn.execute(plan.statement, {KEYS_PARAM: bounds})
        cfg = self._config
        return gather(result.mappings(), plan.row_key, cfg.key_column, cfg.collect, self._convert)

    # --- internals ---------------------------------------------------------------------------------

    def _create_engine(self) -> AsyncEngine:
        url, timeout = self._url, self._timeout
        connect_args: dict[str, Any] = {}
        options: dict[str, Any] = {}
        backend = url.get_backend_name()
        if backend == "postgresql" and url.get_driver_name() == "asyncpg":
            connect_args = {
                "timeout": timeout,  # connect: a dead server answers within the system's timeout
                "server_settings": {
                    # The server gives up on a slow statement itself, so the connection stays usable.
                    "statement_timeout": str(max(1, int(timeout * 1000))),
                    "application_name": f"markiting-hub:{self.system}"[:63],
                },
            }
            options["postgresql_readonly"] = True  # a write, even from a function, is refused
        elif backend == "sqlite":
            connect_args = {"timeout": timeout}  # how long to wait for a writer's lock
        engine = create_async_engine(
            url,
            pool_pre_ping=True,  # a connection the database closed is replaced, not failed on
            pool_size=self._config.pool_size,
            max_overflow=self._config.max_overflow,
            pool_timeout=timeout,
            hide_parameters=True,  # keys (emails...) stay out of error text and logs
            connect_args=connect_args,
            execution_options=options,
        )
        if backend == "sqlite":
            if self._url.database and not _is_uri(self._url):
                event.listen(engine.sync_engine, "do_connect", _sqlite_file_exists)
            event.listen(engine.sync_engine, "connect", _sqlite_query_only)
        return engine

    async def _ready(self) -> Plan:
        """The plan, built on first use: after a failed start, the next read tries again."""
        if self._plan is not None:
            return self._plan
        async with self._plan_lock:
            if self._plan is None:
                async with self._connection() as conn:
                    self._plan = await self._run("start", plans.build(conn, self._config))
            return self._plan

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        engine = self._engine
        if engine is None:
            raise AdapterError(self.system, "not started")
        try:
            conn = await engine.connect()
        except Exception as exc:
            raise self._failure("cannot connect to the database", exc) from None
        try:
            yield conn
        finally:
            await conn.close()

    async def _run(self, what: str, work: Coroutine[Any, Any, T]) -> T:
        """Await one piece of database work; its failure becomes an AdapterError without SQL."""
        try:
            return await work
        except PlanError as exc:
            self._log.error("system %s: %s", self.system, exc)
            raise AdapterError(self.system, str(exc)) from None
        except AdapterError:
            raise
        except Exception as exc:
            raise self._failure("query failed" if what != "check" else "check failed", exc) from None

    async def _bounded(self, what: str, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` for at most the system's timeout, and give the caller its answer at the timeout.

        The work runs in a task of its own: a statement cut off by a timeout leaves SQLAlchemy closing
        its connection gracefully, which waits (asyncpg: up to 2 s) for the database's late answer.
        That cleanup finishes in the background instead of delaying the caller past its timeout."""
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait({task}, timeout=self._timeout)
        except asyncio.CancelledError:  # the hub's own bound, or shutdown: the same, at once
            self._abandon(task)
            raise
        if not done:
            self._abandon(task)
            self._log.warning("system %s: %s: no answer within %gs", self.system, what, self._timeout)
            raise AdapterError(self.system, f"no answer within {self._timeout:g}s")
        try:
            return task.result()
        except AdapterError:
            raise
        except Exception as exc:  # the connection's close, or a bug: still the system's failure
            raise self._failure(f"{what} failed", exc) from None

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        task.cancel()
        self._cleanups.add(task)
        task.add_done_callback(self._cleaned_up)

    def _cleaned_up(self, task: asyncio.Future[Any]) -> None:
        self._cleanups.discard(task)
        failure = None if task.cancelled() else task.exception()  # retrieved: no "never retrieved"
        if failure is not None:
            self._log.debug("system %s: a read cut off by its timeout ended: %s", self.system, kind(failure))

    def _failure(self, what: str, exc: BaseException) -> AdapterError:
        self._log.warning("system %s: %s: %s", self.system, what, first_line(exc, self._redactor))
        return AdapterError(self.system, f"{what} ({kind(exc)})")


def _is_uri(url: URL) -> bool:
    return str(url.query.get("uri", "")).lower() in {"true", "1"} or (url.database or "").startswith("file:")


def _resolve_sqlite_path(url: URL, mappings_dir: Path | None) -> URL:
    """A relative SQLite path is read from the mapping's folder, like every relative path in config."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or _is_uri(url) or mappings_dir is None:
        return url
    path = Path(database)
    return url if path.is_absolute() else url.set(database=str(Path(mappings_dir) / path))


def _sqlite_file_exists(_dialect: Any, _record: Any, cargs: Any, _cparams: Any) -> None:
    # aiosqlite would create a missing file: an empty database, then "no such table". Checked when
    # the pool opens a connection, not on every read.
    if cargs and not Path(str(cargs[0])).is_file():
        raise FileNotFoundError(f"SQLite database file {cargs[0]} not found")


def _sqlite_query_only(dbapi_connection: Any, _record: Any) -> None:
    # SQLite's own guard: this connection cannot write, whatever the statement.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA query_only = ON")
    finally:
        cursor.close()
