"""The embedded store's connections, cut by a cancellation, give SQLite's write lock back and close.

A hub stopping cancels its consumers; one cut in its transaction had its connection terminated
(closed, and stopped when cancelled again). Two things then held the stop up: the closed connection
kept its write transaction while a cursor still held a statement (sqlite3 leaves it a "zombie"), so the
next writer waited out the lock wait; and a close stopped halfway waited forever for aiosqlite's thread,
which had already ended (a CI run hung 180 s in a test's teardown)."""

from __future__ import annotations

import asyncio
import sqlite3

from sqlalchemy import text

from hub.store.db import create_engine


async def test_a_connection_cut_in_its_transaction_gives_the_write_lock_back(tmp_path):
    path = tmp_path / "store.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn = await engine.connect()
        await conn.begin()
        await conn.execute(text("INSERT INTO t VALUES (1)"))
        raw = await conn.get_raw_connection()
        # A statement left open on a cursor that outlives the connection, as a cut statement's does.
        cursor = await raw.driver_connection.execute("SELECT x FROM t")
        await conn.invalidate()  # what SQLAlchemy does to a connection cut by a cancellation

        other = sqlite3.connect(path, timeout=0.3)
        try:
            other.execute("INSERT INTO t VALUES (2)")  # "database is locked" while the cut one holds it
            other.commit()
            assert other.execute("SELECT x FROM t").fetchall() == [(2,)]  # the cut transaction rolled back
        finally:
            other.close()
        del cursor
    finally:
        await engine.dispose()


async def test_a_close_stopped_halfway_ends(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    try:
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            # SQLAlchemy's terminate: a graceful close, and a stop when it is cancelled again meanwhile.
            closing = asyncio.ensure_future(driver.close())
            await asyncio.sleep(0)
            driver.stop()
            await asyncio.wait_for(closing, 5)  # waited forever for a thread that had ended
            driver._thread.join(5)
            assert not driver._thread.is_alive()
            await conn.invalidate()
    finally:
        await engine.dispose()
