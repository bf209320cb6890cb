"""What a caller may read of an error, and what the log keeps of it.

Every GraphQL error, on HTTP and on the websocket, passes `settle` once (HubSchema.process_errors):
it gets a stable `extensions.code`; its message and the strings of its extensions are cut short (a
huge invalid value is never echoed whole) and cleared of SQL, parameters and file paths; a caller's
mistake is logged in one line at INFO, a bug or an outage at ERROR with its traceback (but not the
caller's values).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import strawberry
from graphql import GraphQLError

from hub.api.extensions import ensure_code

log = logging.getLogger("hub.api")
MAX_MESSAGE = 400
MAX_EXTENSION = 100
MAX_LOGGED = 200
ECHO = 60  # the most of a caller's value a message repeats
# Messages graphql-core's parser gives when a document passes its limits.
_PARSE_LIMITS = {
    "Syntax Error: Document contains more than": "QUERY_TOO_LARGE",
    "Syntax Error: Document is nested too deeply": "QUERY_TOO_DEEP",
}
_SQL = re.compile(r"\[(SQL|parameters):|\(Background on this error|Traceback \(most recent call last\)")
_PATH = re.compile(r"(?<![\w:/.])/(?:[\w.@+-]+/)+[\w.@+-]*")
_QUOTED = re.compile(r"(\"[^\"]*\"|'[^']*')")
_LONG_QUOTED = re.compile(r"(['\"])([^'\"\n]{" + str(ECHO) + r"})[^'\"\n]+\1")


def clip(text: str, most: int) -> str:
    return text if len(text) <= most else f"{text[: most - 1]}…"


def scrub(text: str, most: int = MAX_MESSAGE) -> str:
    """A message fit for a caller: its first line, without SQL, parameters, tracebacks or file paths."""
    found = _SQL.search(text)
    if found:
        text = text[: found.start()]
    text = text.strip().split("\n", 1)[0]
    text = _LONG_QUOTED.sub(lambda m: f"{m[1]}{m[2]}…{m[1]}", text)  # a caller's huge value, cut short
    return clip(_PATH.sub("…", text), most)


def public_detail(detail: str | None) -> str | None:
    """A system's health or failure as an open endpoint may tell it: scrubbed, quoted values left out
    (a failing statement's text or a customer's key)."""
    if detail is None:
        return None
    return scrub(_QUOTED.sub("'…'", detail), 160)


def settle(error: GraphQLError) -> None:
    extensions = error.extensions or {}
    if "code" not in extensions:
        for start, code in _PARSE_LIMITS.items():
            if error.message.startswith(start):
                error.extensions = {**extensions, "code": code}
                break
    ensure_code(error)  # logs an INTERNAL error whole, and hides its message
    error.message = scrub(error.message)
    if error.extensions:
        error.extensions = {
            k: clip(v, MAX_EXTENSION) if isinstance(v, str) else v for k, v in error.extensions.items()
        }
    settled = (error.extensions or {}).get("code")
    if settled != "INTERNAL":
        where = ".".join(str(p) for p in error.path) if error.path else "request"
        log.info("refused (%s) at %s: %s", settled, where, clip(error.message, MAX_LOGGED))


class HubSchema(strawberry.Schema):
    """The schema with the hub's error handling: strawberry's default logs every error at ERROR with a
    traceback, a caller's typo as loudly as a bug."""

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            settle(error)


def http_error_body(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": scrub(message), "extensions": {"code": code}}]}
