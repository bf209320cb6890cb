"""Every mutation goes into the audit log (hub.security.audit): who, which operation, on what id, and
the outcome (ok or the error code). Arguments and answers are not written: they hold personal data."""

from __future__ import annotations

from graphql import FieldNode, GraphQLError, OperationType, StringValueNode, VariableNode
from strawberry.types import ExecutionContext

from hub.api.context import Context
from hub.api.extensions import _operation

# Arguments that name what a mutation acts on: ids the hub made, never personal data.
TARGETS = ("id", "contactId", "customerId")


def audit_mutations(ctx: ExecutionContext) -> None:
    """An operation's mutations into the audit log, once it has run (a step of AfterExecution)."""
    context = ctx.context
    if not isinstance(context, Context) or ctx.graphql_document is None:
        return
    operation = _operation(ctx.graphql_document, ctx.operation_name)
    if operation is None or operation.operation is not OperationType.MUTATION:
        return
    mutation_type = ctx.schema._schema.mutation_type
    if mutation_type is None:
        return
    errors = (ctx.result.errors if ctx.result is not None else None) or []
    principal = context.principal
    audit = context.hub.security.audit
    for node in operation.selection_set.selections:
        if not isinstance(node, FieldNode) or node.name.value not in mutation_type.fields:
            continue
        key = node.alias.value if node.alias else node.name.value
        audit.record(
            principal.name,
            principal.kind,
            f"Mutation.{node.name.value}",
            _target(node, ctx.variables or {}),
            _outcome(errors, key),
        )


def _target(node: FieldNode, variables: dict[str, object]) -> str | None:
    """The id argument as the caller gave it: a literal or a variable (read from the document, not
    coerced again)."""
    for argument in node.arguments or ():
        if argument.name.value not in TARGETS:
            continue
        value = argument.value
        if isinstance(value, StringValueNode):
            return value.value
        if isinstance(value, VariableNode) and isinstance(variables.get(value.name.value), str):
            return str(variables[value.name.value])
    return None


def _outcome(errors: list[GraphQLError], key: str) -> str:
    for error in errors:
        if (error.path and error.path[0] == key) or not error.path:
            code = (error.extensions or {}).get("code")
            return str(code) if code else "ERROR"
    return "ok"
