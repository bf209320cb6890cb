"""Prepared documents: a query text is parsed (at most MAX_TOKENS tokens), validated with the hub's
limit rules (hub.api.limits) and planned for the input checks (hub.api.inputs) once, then taken from
memory by its text. Every request's variables are still checked against the plan.

One extension where strawberry's ParserCache, ValidationCache, MaxTokensLimiter and AddValidationRules
were four: their caches are keyed by the parsed document, whose hash walks the whole syntax tree on
every request, and each hook of each extension costs its own wrapper per request (bench/RESULTS.md,
sixth session). The checks run right after validation, before execution, for HTTP and websocket alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache
from graphql import DocumentNode, GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from hub.api.inputs import InputLimits, Plan, check_variables, plan

MAX_TOKENS = 5000  # a bigger document is refused before it is parsed in full (QUERY_TOO_LARGE)
KEPT_DOCUMENTS = 1024
MOST_OPERATIONS = 64  # plans kept per document (one per operation it names)


@dataclass(slots=True)
class _Prepared:
    document: DocumentNode
    errors: list[GraphQLError]  # validation's: shared by every request with this text
    plans: dict[str | None, Plan] = field(default_factory=dict)  # by the operation name given


class PreparedDocuments:
    """One schema's prepared documents. The extension is made per request; this lives with the schema,
    so its rules are the same objects every time."""

    def __init__(self, limit_rules: Sequence[Any], inputs: InputLimits, kept: int = KEPT_DOCUMENTS):
        self.rules = tuple(limit_rules)
        self.inputs = inputs
        self._kept: LRUCache[str, _Prepared] = LRUCache(maxsize=kept)

    def extension(self) -> PrepareDocument:
        return PrepareDocument(self)

    def get(self, query: str) -> _Prepared | None:
        return self._kept.get(query)

    def keep(self, query: str, document: DocumentNode, errors: list[GraphQLError]) -> _Prepared:
        prepared = _Prepared(document, errors)
        self._kept[query] = prepared
        return prepared


class PrepareDocument(SchemaExtension):
    def __init__(self, documents: PreparedDocuments):
        self._documents = documents
        self._found: _Prepared | None = None

    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.graphql_document is None and ctx.query is not None:
            self._found = self._documents.get(ctx.query)
        if self._found is not None:
            ctx.graphql_document = self._found.document  # strawberry parses only when none is set
        else:
            ctx.parse_options["max_tokens"] = MAX_TOKENS
        yield
        # Validated here, once parsed (strawberry validates only while no errors are set): one hook
        # fewer, which strawberry would wrap anew for every request. Strawberry's own refusals (no such
        # operation, a mutation over GET) still come first: it makes them before it would validate.
        self._check()

    def _check(self) -> None:
        ctx = self.execution_context
        document = ctx.graphql_document
        if document is None:
            return
        documents = self._documents
        prepared = self._found
        if prepared is None:
            rules = (*ctx.validation_rules, *documents.rules)
            errors = validate_document(ctx.schema._schema, document, rules)
            # A document given without its text (none so far) has nothing to be kept by.
            if ctx.query is None:
                prepared = _Prepared(document, errors)
            else:
                prepared = documents.keep(ctx.query, document, errors)
        ctx.pre_execution_errors = list(prepared.errors)
        if prepared.errors:
            return
        given = getattr(ctx, "_provided_operation_name", ctx.operation_name)  # strawberry names the first
        planned = prepared.plans.get(given)
        if planned is None:
            planned = plan(ctx.schema._schema, document, given, documents.inputs)
            if len(prepared.plans) < MOST_OPERATIONS:
                prepared.plans[given] = planned
        error = check_variables(planned, ctx.variables, documents.inputs)
        if error is not None:
            ctx.pre_execution_errors = [error]
