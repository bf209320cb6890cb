"""The embedded store's SQLite: its engine, its one writer, and connections that give the write lock
back when they are cut."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import URL, event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

from hub.store.jsoncodec import CODEC

# How long a writer waits for SQLite's lock (held by another process) before failing.
LOCK_WAIT_SECONDS = 30


def create_engine(url: URL) -> AsyncEngine:
    database = url.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    args, kwargs = url.get_dialect()().create_connect_args(url)
    kwargs["timeout"] = LOCK_WAIT_SECONDS

    async def connect() -> aiosqlite.Connection:
        connection = _Connection(functools.partial(sqlite3.connect, *args, **kwargs), 64)
        connection._thread.daemon = True  # as SQLAlchemy does: a stuck statement must not hold the exit
        return await connection

    # Parameters (customers' keys, texts) stay out of error messages, and so out of logs and answers.
    engine = create_async_engine(url, hide_parameters=True, async_creator=connect, **CODEC)
    event.listen(engine.sync_engine, "connect", _pragmas)
    _one_writer(engine)
    return engine


class _Connection(aiosqlite.Connection):
    """aiosqlite's connection, closed so that a connection cut by a cancellation (SQLAlchemy
    terminates it: close, and stop when cancelled again) cannot hold SQLite's write lock:

    - close rolls back first. sqlite3's close leaves a connection a "zombie" while a cursor still holds
      a statement (the cut statement's cursor does), and a zombie keeps its open transaction, so the
      write lock, until that cursor is collected: every other writer waited out the lock wait.
    - a second stop answers with the first one's future: aiosqlite's thread ends at the first stop,
      so a second one was never answered and the close that made it waited forever."""

    _stopping: asyncio.Future[Any] | None = None

    async def close(self) -> None:
        if self._connection is not None and self._running:
            with contextlib.suppress(Exception):  # closing anyway: the close below says what failed
                await self._execute(self._conn.rollback)
        if not self._running:  # stopped meanwhile: its thread closes the connection and ends
            stopping = self.stop()
            if stopping is not None:
                await stopping
            return
        await super().close()

    def stop(self) -> asyncio.Future[Any] | None:
        if self._stopping is None:
            self._stopping = super().stop()
        return self._stopping


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC")


def _one_writer(engine: AsyncEngine) -> None:
    """SQLite has one writer. Its own wait for the write lock polls with growing sleeps, so under load
    an unlucky writer loses round after round (seconds). Here the connections of this process queue for
    it in order instead: a connection takes the lock at its transaction's first write (where SQLite
    begins the transaction) and gives it back when the transaction ends: commit or rollback, and also
    whenever its DBAPI connection goes back to the pool, is invalidated or closed (a transaction cut by
    a cancellation may end that way, without a rollback event: the lock must not stay taken; its
    connection's close rolls it back, see _Connection). Reads never wait."""
    lock = asyncio.Lock()
    holders: set[int] = set()  # id() of the DBAPI connections holding the lock

    def dbapi(conn: Connection) -> int | None:
        try:
            return id(conn.connection.dbapi_connection)
        except Exception:  # already invalidated or closed: the pool event releases it
            return None

    def before(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        key = dbapi(conn)
        if key is not None and key not in holders and statement.lstrip()[:6].upper() in _WRITES:
            await_only(lock.acquire())  # inside SQLAlchemy's greenlet: the event loop runs meanwhile
            holders.add(key)

    def release(key: int | None) -> None:
        if key is not None and key in holders:
            holders.discard(key)
            lock.release()

    def done(conn: Connection) -> None:
        release(dbapi(conn))

    def returned(dbapi_connection: Any, *_args: Any) -> None:
        release(id(dbapi_connection))

    sync = engine.sync_engine
    event.listen(sync, "before_cursor_execute", before)
    event.listen(sync, "commit", done)
    event.listen(sync, "rollback", done)
    for name in ("checkin", "invalidate", "close", "close_detached"):
        event.listen(sync.pool, name, returned)


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout waits instead of failing at once.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={LOCK_WAIT_SECONDS * 1000}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
