"""The SQL adapter's config: checked at load through the registry, with file:line, never echoing the URL."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from hub.config import SHIPPED_MAPPINGS, Settings
from hub.config.loader import MappingError, Problem, load_located
from hub.registry import build_systems, load_mapping, validate_config
from hub.store.db import create_engine
from hub_adapters.generic.sql import SqlAdapter, SqlConfig
from hub_adapters.generic.sql.statement import check_query

SECRET = "pw-Secret-4711"
URL = f"postgresql+asyncpg://hub:{SECRET}@db.internal:5432/shop"
LOC = ("systems", "shop", "config")


def problems_for(tmp_path: Path, config_yaml: str) -> tuple[list[Problem], str]:
    """Validate a config block the way the registry does; the problems and the YAML file's text."""
    text = "systems:\n  shop:\n    adapter: sql\n    config:\n" + textwrap.indent(
        textwrap.dedent(config_yaml).strip() + "\n", "      "
    )
    path = tmp_path / "hub.yaml"
    path.write_text(text)
    located = load_located(path)
    problems: list[Problem] = []
    config = validate_config(SqlAdapter, located.data["systems"]["shop"]["config"], LOC, located, problems)
    assert (config is None) == bool(problems)
    return problems, text


def line_of(text: str, start: str) -> int:
    """The 1-based line of the first line that starts (after indentation) with `start`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.strip().startswith(start))


@pytest.fixture(autouse=True)
def shop_url(monkeypatch):
    monkeypatch.setenv("SHOP_DB_URL", URL)


@pytest.mark.parametrize(
    ("config", "at", "message"),
    [
        (
            "url: ${SHOP_DB_URL}\ntable: customers\nquery: SELECT email FROM customers WHERE email IN :keys\n"
            "key_column: email",
            "config:",
            "give exactly one of table or query",
        ),
        ("url: ${SHOP_DB_URL}\nkey_column: email", "config:", "give exactly one of table or query"),
        (
            "url: ${SHOP_DB_URL}\nkey_column: email\nquery: DELETE FROM customers WHERE email IN :keys",
            "query:",
            "the query must be a SELECT (or WITH ... SELECT), not DELETE",
        ),
        (
            "url: ${SHOP_DB_URL}\nkey_column: email\n"
            "query: SELECT email FROM customers WHERE email IN :keys; DROP TABLE customers",
            "query:",
            "the query must be one statement",
        ),
        (
            "url: ${SHOP_DB_URL}\nkey_column: email\nquery: |\n"
            "  WITH gone AS (DELETE FROM customers RETURNING email)\n"
            "  SELECT email FROM gone WHERE email IN :keys",
            "query:",
            "the query must only read: DELETE is not allowed",
        ),
        (
            "url: ${SHOP_DB_URL}\nkey_column: email\n"
            "query: SELECT email FROM customers WHERE email IN :keys FOR UPDATE",
            "query:",
            "UPDATE is not allowed",
        ),
        (
            "url: ${SHOP_DB_URL}\nkey_column: email\nquery: SELECT email INTO copy FROM customers WHERE email IN :keys",
            "query:",
            "INTO is not allowed",
        ),
        (
            "url: ${SHOP_DB_URL}\nkey_column: email\nquery: SELECT email FROM customers",
            "query:",
            "WHERE <key column> IN :keys",
        ),
        (
            "url: ${SHOP_DB_URL}\nkey_column: email\n"
            "query: SELECT email FROM customers WHERE email IN :keys AND shop = :shop",
            "query:",
            "binds only :keys, not :shop",
        ),
        (
            "url: ${SHOP_DB_URL}\nkey_column: email\nquery: SELECT email FROM customers WHERE note = 'it''s",
            "query:",
            "unterminated",
        ),
        ('url: ${SHOP_DB_URL}\ntable: "customers; DROP TABLE x"\nkey_column: email', "table:", "plain identifier"),
        ("url: ${SHOP_DB_URL}\ntable: customers\nkey_column: e-mail", "key_column:", "plain identifier"),
        ('url: ${SHOP_DB_URL}\ntable: customers\nschema: "public\\"x"\nkey_column: email', "schema:", "plain"),
        (
            'url: ${SHOP_DB_URL}\ntable: customers\nkey_column: email\ncolumns: [name, "x) OR (1=1"]',
            "columns:",
            "plain identifier",
        ),
        (
            "url: ${SHOP_DB_URL}\nschema: public\nkey_column: email\n"
            "query: SELECT email FROM customers WHERE email IN :keys",
            "config:",
            "schema and columns go with table",
        ),
        (
            "url: ${SHOP_DB_URL}\ntable: customers\nkey_column: email\ncolumns: [name]\ncollect: [product]",
            "config:",
            "collect names columns that columns leaves out: product",
        ),
        ("url: ${SHOP_DB_URL}\ntable: customers\nkey_column: email\ntabel: x", "tabel:", "Extra inputs"),
        ("url: ${SHOP_DB_URL}\ntable: customers\nkey_column: email\nmax_batch: 0", "max_batch:", "greater"),
        (
            "url: ${SHOP_DB_URL}\ntable: customers\nkey_column: email\nnaive_timezone: Mars/Olympus",
            "naive_timezone:",
            "unknown time zone",
        ),
        ("url: ${SHOP_DB_URL}\ntable: customers\nkey_column: email\nkey_type: uuid", "key_type:", "string"),
    ],
)
def test_bad_config_is_reported_with_file_and_line(tmp_path, config, at, message):
    problems, text = problems_for(tmp_path, config)
    assert problems, "the config must be refused"
    where = f"{tmp_path / 'hub.yaml'}:{line_of(text, at)}:"
    matching = [p for p in problems if message in p.message]
    assert matching, f"no problem says {message!r}: {[str(p) for p in problems]}"
    assert str(matching[0]).startswith(where), f"{matching[0]} is not at {where}"
    assert all(SECRET not in str(p) for p in problems)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"postgresql://hub:{SECRET}@db/shop", "'postgresql' is not an async driver"),
        (f"nosuchdb+fast://hub:{SECRET}@db/shop", "unknown database dialect 'nosuchdb+fast'"),
        (f"mysql+aiomysql://hub:{SECRET}@db/shop", "the driver for 'mysql+aiomysql' is not installed"),
        (f"hub:{SECRET}@db/shop", "not a database URL"),
        ("sqlite+aiosqlite:///:memory:", "in-memory SQLite"),
    ],
)
def test_a_bad_url_is_reported_without_the_url(tmp_path, monkeypatch, url, message):
    monkeypatch.setenv("SHOP_DB_URL", url)
    problems, text = problems_for(tmp_path, "url: ${SHOP_DB_URL}\ntable: customers\nkey_column: email")
    assert [p.field for p in problems] == ["systems.shop.config.url"]
    assert message in problems[0].message and problems[0].line == line_of(text, "url:")
    assert SECRET not in str(problems[0]) and "db/shop" not in str(problems[0])


def test_an_unset_environment_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOP_DB_URL")
    problems, _ = problems_for(tmp_path, "url: ${SHOP_DB_URL}\ntable: customers\nkey_column: email")
    assert any("environment variable SHOP_DB_URL is not set" in p.message for p in problems)


def test_the_config_never_shows_the_url():
    config = SqlConfig.model_validate({"url": URL, "table": "customers", "key_column": "email"})
    for shown in (repr(config), str(config), config.model_dump_json()):
        assert SECRET not in shown and "db.internal" not in shown


async def test_a_bad_system_fails_the_whole_mapping_with_file_and_line(tmp_path):
    """Through load_mapping + build_systems, as `hub mappings validate` and the hub's start do."""
    folder = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, folder)
    doc = yaml.safe_load((folder / "hub.yaml").read_text())
    doc["systems"]["shop"] = {
        "adapter": "sql",
        "key": "email",
        "profile": {"name": "full_name"},
        "config": {"url": "${SHOP_DB_URL}", "key_column": "email", "query": "DELETE FROM customers"},
    }
    (folder / "hub.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    mapping, located = load_mapping(folder)
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    try:
        with pytest.raises(MappingError) as info:
            build_systems(mapping, located, Settings(mappings_dir=folder), engine)
    finally:
        await engine.dispose()
    (problem,) = info.value.problems
    text = (folder / "hub.yaml").read_text()
    assert problem.field == "systems.shop.config.query"
    assert problem.line == line_of(text, "query: DELETE")
    assert str(problem).startswith(f"{folder / 'hub.yaml'}:{problem.line}:")


@pytest.mark.parametrize(
    ("query", "runs"),
    [
        # Words in literals, quoted names and comments are not statements.
        (
            "SELECT email, 'delete me; now' AS note, \"update\" /* drop */ FROM t -- insert\nWHERE email IN :keys",
            None,
        ),
        ("WITH recent AS (SELECT email FROM t) SELECT email FROM recent WHERE email IN :keys", None),
        ("select email from t where created_at > '2024-01-01 10\\:00' and email in :keys", None),
        # The expanding list brings its own parentheses; one trailing semicolon is dropped.
        ("SELECT email FROM t WHERE email IN ( :keys );", "SELECT email FROM t WHERE email IN :keys"),
        (  # a ';' in a comment ends nothing
            "SELECT email FROM t WHERE lower(email) in (:keys) -- end;",
            "SELECT email FROM t WHERE lower(email) IN :keys -- end;",
        ),
    ],
)
def test_plain_selects_pass(query, runs):
    assert check_query(query) == (runs if runs is not None else query)
