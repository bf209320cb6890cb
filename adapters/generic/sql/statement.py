"""Checks on a mapping's SQL: plain identifiers, and a query that is one SELECT with `:keys`.

These checks catch mistakes at load, with the mapping's line. They are not the security boundary: a
SELECT can still call a function with side effects. The adapter also reads in a read-only transaction
where the database offers one (PostgreSQL, SQLite), and the README asks for a read-only database user.
"""

from __future__ import annotations

import re

from sqlalchemy import text

# Unquoted SQL identifiers: what every database accepts without quoting rules of its own. Names are
# still passed to SQLAlchemy as names (quoted by it where needed), never formatted into SQL.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
KEYS_PARAM = "keys"
MAX_QUERY_CHARS = 20_000

# Words that make a statement write, change the schema or leave the statement: rejected anywhere
# outside literals and comments. `FOR UPDATE` (row locks) and `SELECT ... INTO` (creates a table in
# PostgreSQL) are caught too; neither belongs in a read.
_FORBIDDEN = (
    "insert update delete merge upsert drop alter create truncate grant revoke copy call exec execute "
    "attach detach pragma vacuum reindex lock into"
).split()
_FORBIDDEN_WORD = re.compile(r"\b(" + "|".join(_FORBIDDEN) + r")\b", re.IGNORECASE)
_FIRST_WORD = re.compile(r"^\s*([A-Za-z]+)")
# `IN (:keys)` would put the expanded list in a second pair of parentheses (a row value): the
# expanding parameter brings its own, so it is rewritten to `IN :keys`.
_PARENTHESISED_KEYS = re.compile(r"\bIN\s*\(\s*:keys\s*\)", re.IGNORECASE)
# What hides SQL words from the checks: string literals ('' escapes a quote), quoted identifiers,
# PostgreSQL dollar quotes, and comments.
_OPAQUE = re.compile(
    r"'(?:[^']|'')*'"
    r'|"(?:[^"]|"")*"'
    r"|`[^`]*`"
    r"|\$([A-Za-z_]*)\$.*?\$\1\$"
    r"|--[^\n]*"
    r"|/\*.*?\*/",
    re.DOTALL,
)


def check_identifier(name: str) -> str:
    if not IDENTIFIER.match(name):
        raise ValueError("must be a plain identifier: a letter or _, then letters, digits or _ (at most 63)")
    return name


def _blank(match: re.Match[str]) -> str:
    # Keep the length and line breaks, so nothing that follows moves.
    return re.sub(r"[^\n]", " ", match.group(0))


def check_query(query: str) -> str:
    """The query as it will run (`IN (:keys)` rewritten to `IN :keys`); ValueError saying what is wrong.

    Messages name keywords and parameter names only, never the query text."""
    if len(query) > MAX_QUERY_CHARS:
        raise ValueError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    query = _PARENTHESISED_KEYS.sub("IN :keys", query.strip())
    bare = _OPAQUE.sub(_blank, query)
    if "'" in bare or '"' in bare or "/*" in bare:
        raise ValueError("the query has an unterminated string literal or comment")
    bare = bare.rstrip()
    if bare.endswith(";"):  # one trailing semicolon is harmless; drop it from the statement too
        bare = bare[:-1].rstrip()
        query = query[: len(bare)].rstrip()
    if ";" in bare:
        raise ValueError("the query must be one statement: no ';' between statements")
    first = _FIRST_WORD.match(bare)
    if first is None or first.group(1).lower() not in {"select", "with"}:
        word = first.group(1).upper() if first else "nothing"
        raise ValueError(f"the query must be a SELECT (or WITH ... SELECT), not {word}")
    forbidden = _FORBIDDEN_WORD.search(bare)
    if forbidden:
        raise ValueError(f"the query must only read: {forbidden.group(1).upper()} is not allowed")
    # SQLAlchemy's own reading of the bound parameters, the one that will run: it sees `:name` also
    # inside literals, so a literal colon must be written `\:`.
    params = set(text(query).compile().params)
    if KEYS_PARAM not in params:
        raise ValueError("the query must select by the keys: WHERE <key column> IN :keys")
    others = sorted(params - {KEYS_PARAM})
    if others:
        names = ", ".join(f":{p}" for p in others)
        raise ValueError(f"the query binds only :keys, not {names} (write \\: for a literal colon)")
    return query
