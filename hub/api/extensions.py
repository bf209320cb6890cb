"""Cross-cutting work at the GraphQL edge, kept out of the resolvers: stable error codes, the errors
that go with partial data, and the limits every operation is held to."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from hub.api.answers import AnswerReads
from hub.api.context import Context
from hub.api.limits import edge_rules
from hub.config import Settings
from hub.core import reads

log = logging.getLogger("hub.api")


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


AfterStep = Callable[[ExecutionContext], None]


class AfterExecution(SchemaExtension):
    """The steps that read an operation's result once it has run, in the order given, as one strawberry
    extension. Strawberry builds a context manager per hook of each extension for every request; as
    extensions of their own, these steps cost a small operation about a tenth of its CPU
    (bench/RESULTS.md, the seventh session)."""

    def __init__(self, *, steps: Sequence[AfterStep]):
        self._steps = steps

    def on_execute(self) -> Iterator[None]:
        yield
        for step in self._steps:
            step(self.execution_context)


def partial_data(ctx: ExecutionContext) -> None:
    """Puts the errors of partial data into the response, beside the data that could be read."""
    result, context = ctx.result, ctx.context
    if result is not None and isinstance(context, Context) and context.partial:
        result.errors = [*(result.errors or []), *context.partial]


def answer_policy(cacheable_roots: frozenset[str]) -> AfterStep:
    """Finds a query's answer fit to keep whole (hub.api.answers): a query, not a mutation; every root
    field one the schema lists as cacheable (default deny: a new field is live until listed); no
    errors, also none of partial data. Whether its reads are still current is checked on every hit."""

    def approve(ctx: ExecutionContext) -> None:
        recorded = reads.current()
        if not isinstance(recorded, AnswerReads):
            return
        result = ctx.result
        if result is None or result.errors or (isinstance(ctx.context, Context) and ctx.context.partial):
            return
        operation = _operation(ctx.graphql_document, ctx.operation_name)
        if operation is None or operation.operation is not OperationType.QUERY:
            return
        roots = operation.selection_set.selections
        if all(isinstance(s, FieldNode) and s.name.value in cacheable_roots for s in roots):
            recorded.approved = True

    return approve


def _operation(document: Any, name: str | None) -> OperationDefinitionNode | None:
    if document is None:
        return None
    found = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return found[0] if len(found) == 1 else None
    return next((d for d in found if d.name is not None and d.name.value == name), None)


def limit_rules(settings: Settings) -> list[Any]:
    """The document limits as validation rules (hub.api.limits: depth, aliases, cost, introspection),
    made once per schema: the validation cache is keyed by the rule classes, so rules made per request
    would never hit it."""
    return edge_rules(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_cost=settings.max_query_cost,
        introspection=settings.introspection,
    )
