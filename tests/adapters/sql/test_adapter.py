"""The SQL adapter against real databases: every test here runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from hub.ports import AdapterError, Health
from tests.adapters.sql.conftest import Statements, execute, seed

ANNA, BOB, CAROL = "anna@example.com", "Bob@Example.com", "carol@example.com"

JOIN = """
    SELECT c.email, c.full_name, o.product
    FROM customers c
    LEFT JOIN orders o ON o.customer_id = c.id
    WHERE c.email IN (:keys)
    ORDER BY c.id, o.ordered_at DESC
"""


async def test_table_mode_reads_records_with_json_friendly_values(shop_url, make_adapter):
    adapter = make_adapter(shop_url, table="customers", key_column="email")
    await adapter.start()
    records = await adapter.fetch([ANNA, CAROL, "nobody@example.com"])
    assert set(records) == {ANNA, CAROL}, "unknown keys are left out"
    assert records[ANNA] == {
        "id": 1, "email": ANNA, "full_name": "Anna de Vries", "tier": "G", "vip": True,
        "born": "1990-01-02",
        "last_seen": "2024-05-01T08:00:00+00:00",
        "signed_up": "2020-01-01T12:00:00+00:00",  # no zone in the database: read as UTC
        "balance": 1250.5, "score": 0.75, "visits": 12, "notes": None,
    }
    assert records[CAROL] == {
        "id": 3, "email": CAROL, "full_name": "Carol", "tier": None, "vip": None, "born": None,
        "last_seen": None, "signed_up": None, "balance": None, "score": None, "visits": None, "notes": None,
    }
    bob = (await adapter.fetch([BOB]))[BOB]
    assert bob["vip"] is False and bob["visits"] == 0
    assert bob["balance"] == 100 and isinstance(bob["balance"], int), "a whole NUMERIC stays exact"
    json.dumps(records)  # plain data, as the hub caches and answers it


async def test_decimals_as_text_and_naive_timestamps_in_a_zone(shop_url, make_adapter):
    adapter = make_adapter(
        shop_url, table="customers", key_column="email", decimals="text", naive_timezone="Europe/Amsterdam"
    )
    await adapter.start()
    anna = (await adapter.fetch([ANNA]))[ANNA]
    assert anna["balance"] == "1250.50"
    assert anna["signed_up"] == "2020-01-01T11:00:00+00:00"  # 12:00 in Amsterdam (CET)
    if shop_url.startswith("postgresql"):
        assert anna["last_seen"] == "2024-05-01T08:00:00+00:00"  # timestamptz: its own zone
    else:
        assert anna["last_seen"] == "2024-05-01T06:00:00+00:00"  # SQLite keeps no zone at all


async def test_columns_selects_only_those_and_the_key(shop_url, make_adapter):
    adapter = make_adapter(shop_url, table="customers", key_column="email", columns=["full_name", "tier"])
    await adapter.start()
    statements = Statements(adapter)
    assert await adapter.fetch([ANNA]) == {ANNA: {"email": ANNA, "full_name": "Anna de Vries", "tier": "G"}}
    (sql, _), = statements.sent
    assert "balance" not in sql and "notes" not in sql


async def test_one_statement_per_fetch_and_each_key_bound_once(shop_url, make_adapter):
    adapter = make_adapter(shop_url, table="customers", key_column="email")
    await adapter.start()
    statements = Statements(adapter)
    records = await adapter.fetch([ANNA, ANNA, "nobody@example.com", CAROL])
    assert set(records) == {ANNA, CAROL}
    assert len(statements) == 1
    (_, params), = statements.sent
    assert sorted(params) == sorted([ANNA, "nobody@example.com", CAROL])
    statements.clear()
    assert await adapter.fetch([]) == {} and len(statements) == 0, "no keys: no statement"


async def test_large_key_lists_are_chunked_by_max_batch(shop_url, make_adapter):
    adapter = make_adapter(shop_url, table="customers", key_column="email", max_batch=2)
    await adapter.start()
    statements = Statements(adapter)
    keys = [ANNA, "x1@example.com", CAROL, "x2@example.com", BOB]
    records = await adapter.fetch(keys)
    assert set(records) == {ANNA, CAROL, BOB}
    assert [len(params) for _, params in statements.sent] == [2, 2, 1]


async def test_key_match_lower_finds_keys_stored_in_another_case(shop_url, make_adapter):
    exact = make_adapter(shop_url, table="customers", key_column="email")
    await exact.start()
    assert await exact.fetch(["bob@example.com"]) == {}, "exact: the stored case only"

    lower = make_adapter(shop_url, table="customers", key_column="email", key_match="lower")
    await lower.start()
    statements = Statements(lower)
    records = await lower.fetch(["bob@example.com", "BOB@example.com", ANNA])
    assert set(records) == {"bob@example.com", "BOB@example.com", ANNA}, "each key that asked gets the record"
    assert records["bob@example.com"]["email"] == BOB
    (_, params), = statements.sent
    assert sorted(params) == sorted(["bob@example.com", ANNA])


async def test_integer_key_column_takes_text_keys(shop_url, make_adapter):
    # The hub's keys are text; the column is INTEGER (asyncpg refuses text for it): keys are bound as
    # numbers, and a key that is no number cannot match.
    adapter = make_adapter(shop_url, table="customers", key_column="id", columns=["full_name"])
    await adapter.start()
    records = await adapter.fetch(["1", "3", "not-a-number", "99"])
    assert records == {"1": {"id": 1, "full_name": "Anna de Vries"}, "3": {"id": 3, "full_name": "Carol"}}


async def test_query_mode_joins_and_collects_the_many_side(shop_url, make_adapter):
    adapter = make_adapter(shop_url, query=JOIN, key_column="email", collect=["product"])
    await adapter.start()
    statements = Statements(adapter)
    records = await adapter.fetch([ANNA, CAROL, BOB, "nobody@example.com"])
    assert len(statements) == 1, "a join is still one statement per batch"
    assert records[ANNA] == {"email": ANNA, "full_name": "Anna de Vries", "product": ["mortgage", "savings"]}
    assert records[BOB]["product"] == ["credit-card"]
    assert records[CAROL]["product"] == [], "no orders: an empty list, not [None]"
    assert "nobody@example.com" not in records


async def test_query_mode_with_integer_keys(shop_url, make_adapter):
    adapter = make_adapter(
        shop_url,
        query="SELECT id AS customer_no, full_name FROM customers WHERE id IN :keys",
        key_column="customer_no",
        key_type="integer",
    )
    await adapter.start()
    assert await adapter.fetch(["2", "x"]) == {"2": {"customer_no": 2, "full_name": "Bob"}}


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"table": "customerz", "key_column": "email"}, "table 'customerz' not found"),
        ({"table": "customers", "key_column": "mail"}, "has no column 'mail'"),
        ({"table": "customers", "key_column": "email", "columns": ["nope"]}, "has no column 'nope'"),
        (
            {"query": "SELECT full_name FROM customers WHERE email IN :keys", "key_column": "email"},
            "returns no column 'email'",
        ),
        (
            {"query": JOIN, "key_column": "email", "collect": ["products"]},
            "returns no column 'products'",
        ),
        (
            {
                "query": "SELECT c.id, o.id, c.email FROM customers c JOIN orders o ON o.customer_id = c.id "
                         "WHERE c.email IN :keys",
                "key_column": "email",
            },
            "returns 'id' twice: name each column (AS ...)",
        ),
    ],
)
async def test_what_the_database_lacks_is_a_clean_error_at_start(shop_url, make_adapter, config, says):
    adapter = make_adapter(shop_url, **config)
    with pytest.raises(AdapterError) as info:
        await adapter.start()
    message = str(info.value)
    assert info.value.system == "shop" and message.startswith("system 'shop': ")
    assert says in message
    health = await adapter.check()
    assert not health.ok and says in health.detail


async def test_a_failing_query_says_what_failed_without_sql(shop_url, make_adapter):
    adapter = make_adapter(shop_url, query="SELECT email FROM nowhere WHERE email IN :keys", key_column="email")
    with pytest.raises(AdapterError) as info:
        await adapter.start()
    message = str(info.value)
    assert message.startswith("system 'shop': query failed (")
    for leak in ("SELECT", "nowhere", "[SQL", "sqlalche.me"):
        assert leak not in message


async def test_a_start_that_failed_is_retried_by_the_next_read(db_url, make_adapter):
    adapter = make_adapter(db_url, table="customers", key_column="email")
    with pytest.raises(AdapterError, match=r"not found|FileNotFoundError"):
        await adapter.start()  # the hub goes on without the system ...
    await seed(db_url)  # ... the table appears ...
    assert set(await adapter.fetch([ANNA])) == {ANNA}  # ... and the next read finds it
    assert (await adapter.check()).ok


async def test_a_table_dropped_while_serving_fails_reads_and_check(shop_url, make_adapter):
    adapter = make_adapter(shop_url, table="customers", key_column="email")
    await adapter.start()
    health = await adapter.check()
    assert health == Health(True, f"{make_url(shop_url).get_backend_name()} reachable; reads table customers")
    await execute(shop_url, "DROP TABLE orders", "DROP TABLE customers")
    with pytest.raises(AdapterError) as info:
        await adapter.fetch([ANNA])
    assert str(info.value).startswith("system 'shop': query failed (")
    health = await adapter.check()
    assert not health.ok and health.detail.startswith("system 'shop': check failed (")


async def test_reads_go_through_a_read_only_connection(shop_url, make_adapter):
    adapter = make_adapter(shop_url, table="customers", key_column="email")
    await adapter.start()
    assert adapter.engine is not None
    async with adapter.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            assert (await conn.execute(text("PRAGMA query_only"))).scalar() == 1
        else:
            assert (await conn.execute(text("SHOW transaction_read_only"))).scalar() == "on"


@pytest.mark.postgres
async def test_a_select_with_a_side_effect_is_refused_by_postgresql(postgres_url, make_adapter):
    # The statement checks let a function call through; the read-only transaction does not.
    await seed(postgres_url)
    await execute(postgres_url, "CREATE SEQUENCE hits")
    adapter = make_adapter(
        postgres_url,
        query="SELECT email, nextval('hits') AS hit FROM customers WHERE email IN :keys",
        key_column="email",
    )
    await adapter.start()  # the probe reads no row: nextval() is never called
    with pytest.raises(AdapterError, match=r"query failed \("):
        await adapter.fetch([ANNA])
    async with adapter.engine.connect() as conn:  # type: ignore[union-attr]
        assert (await conn.execute(text("SELECT is_called FROM hits"))).scalar() is False  # never advanced


@pytest.mark.postgres
async def test_a_slow_query_is_cut_at_the_timeout_and_the_next_read_answers(postgres_url, make_adapter):
    await seed(postgres_url)
    adapter = make_adapter(
        postgres_url,
        timeout=0.5,
        query="SELECT email, pg_sleep(CASE WHEN email = 'carol@example.com' THEN 5 ELSE 0 END) AS z "
              "FROM customers WHERE email IN :keys",
        key_column="email",
    )
    await adapter.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AdapterError) as info:
        await adapter.fetch([CAROL])
    assert loop.time() - started < 2.0
    assert str(info.value) in {
        "system 'shop': no answer within 0.5s",
        "system 'shop': query failed (QueryCanceledError)",  # the server's statement_timeout won the race
    }
    for _ in range(3):  # no connection left behind that answers the old question
        assert set(await adapter.fetch([ANNA])) == {ANNA}


async def test_a_locked_sqlite_database_fails_within_the_timeout(tmp_path, make_adapter):
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    await seed(url)
    adapter = make_adapter(url, timeout=0.5, table="customers", key_column="email")
    await adapter.start()
    writer = sqlite3.connect(tmp_path / "shop.db")
    writer.execute("BEGIN EXCLUSIVE")
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AdapterError, match="system 'shop'"):
            await adapter.fetch([ANNA])
        assert loop.time() - started < 2.0
    finally:
        writer.rollback()
        writer.close()
    assert set(await adapter.fetch([ANNA])) == {ANNA}


async def test_a_missing_sqlite_file_is_dead_not_created(tmp_path, make_adapter):
    path = tmp_path / "typo.db"
    adapter = make_adapter(f"sqlite+aiosqlite:///{path}", table="customers", key_column="email")
    with pytest.raises(AdapterError, match=r"cannot connect to the database \(FileNotFoundError\)"):
        await adapter.start()
    health = await adapter.check()
    assert not health.ok and "cannot connect" in health.detail
    assert not path.exists(), "aiosqlite would have created an empty database"


async def test_a_relative_sqlite_path_is_read_from_the_mapping_folder(tmp_path, make_adapter):
    await seed(f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}")
    adapter = make_adapter("sqlite+aiosqlite:///shop.db", table="customers", key_column="email")
    await adapter.start()
    assert set(await adapter.fetch([ANNA])) == {ANNA}


async def test_a_dead_postgresql_server_is_reported_quickly(make_adapter):
    # Nothing listens on port 1: the connection is refused, and check() says so within the timeout.
    adapter = make_adapter(
        "postgresql+asyncpg://hub:pw-4711@127.0.0.1:1/shop", timeout=1.0, table="customers", key_column="email"
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AdapterError, match=r"system 'shop': cannot connect to the database \("):
        await adapter.start()
    health = await adapter.check()
    assert not health.ok and health.detail.startswith("system 'shop': cannot connect to the database (")
    assert loop.time() - started < 3.0
    assert "pw-4711" not in health.detail


@pytest.mark.postgres
async def test_the_password_never_appears(postgres_url, make_adapter, caplog):
    caplog.set_level(logging.DEBUG)
    password = "pw-Secret-4711"  # trust auth ignores it; the adapter must still never show it
    url = make_url(postgres_url).set(password=password).render_as_string(hide_password=False)
    dead = make_url(url).set(port=1).render_as_string(hide_password=False)
    shown: list[str] = []

    async def outcome(awaitable) -> None:
        try:
            shown.append(repr(await awaitable))
        except AdapterError as exc:
            shown.extend([str(exc), repr(exc)])

    missing = make_adapter(url, table="customers", key_column="email")
    await outcome(missing.start())  # no table yet
    await outcome(missing.check())
    await seed(postgres_url)
    working = make_adapter(url, table="customers", key_column="email")
    await outcome(working.start())
    await outcome(working.fetch([ANNA]))
    await execute(postgres_url, "DROP TABLE orders", "DROP TABLE customers")
    await outcome(working.fetch([ANNA]))
    down = make_adapter(dead, timeout=1.0, table="customers", key_column="email")
    await outcome(down.start())
    await outcome(down.check())
    await outcome(down.fetch([ANNA]))
    for adapter in (missing, working, down):
        shown += [repr(adapter), str(adapter), adapter.safe_url, repr(adapter._config)]
    shown += [caplog.text, *(r.getMessage() for r in caplog.records)]
    assert any("query failed" in s for s in shown) and any("cannot connect" in s for s in shown)
    assert not [s for s in shown if password in s]
