"""Cross-cutting work at the GraphQL edge, kept out of the resolvers: stable error codes, the errors
that go with partial data, and the limits every operation is held to."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension

from hub.api.context import Context

log = logging.getLogger("hub.api")
MAX_ALIASES = 30


def ensure_code(error: GraphQLError) -> None:
    """Every error carries a stable `extensions.code`, also those graphql-core raises itself."""
    if error.extensions and "code" in error.extensions:
        return
    if error.path is None:  # a request-level error: the document or its variables
        if error.message.startswith("Syntax Error"):
            code = "GRAPHQL_PARSE_FAILED"
        elif error.message.startswith("Variable "):
            code = "BAD_USER_INPUT"
        else:
            code = "GRAPHQL_VALIDATION_FAILED"
    elif error.original_error is None or isinstance(error.original_error, GraphQLError):
        code = "BAD_USER_INPUT"
    else:
        # A bug or an outage, not the caller's doing: log it whole, tell the caller no internals.
        code = "INTERNAL"
        log.error("unexpected error at %s", error.path, exc_info=error.original_error)
        error.message = "Unexpected error; the hub's log has the details."
    error.extensions = {**(error.extensions or {}), "code": code}



class PartialData(SchemaExtension):
    """Puts the errors of partial data into the response, beside the data that could be read."""

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        context = self.execution_context.context
        if result is not None and isinstance(context, Context) and context.partial:
            result.errors = [*(result.errors or []), *context.partial]


def limit_rules(max_depth: int) -> list[Any]:
    """The depth and alias limits as validation rules, made once per schema: the validation cache is
    keyed by the rule classes, so rules made per request would never hit it."""
    return [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    ]
