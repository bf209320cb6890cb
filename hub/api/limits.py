"""The limits a GraphQL document is held to before it runs, as validation rules (cached with the
document's validation): depth, aliases, introspection when it is off, and cost.

Cost counts what an operation may make the hub resolve: every field is 1, and a field that answers a
list multiplies what is selected under it by the list's size: the `limit` argument when the document
gives it, the most the field allows when a variable gives it, the size of a literal `ids` list, or
else an estimate per field (LIST_SIZES, DEFAULT_LIST_SIZE). So a query that nests lists inside lists is
refused before it runs, however few fields it names. Every refusal carries a stable extensions.code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter

QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"

# Items a list field is taken to answer when nothing in the document says: the field's most when a
# variable gives its size argument (limit, ids), or an estimate of a typical list.
DEFAULT_LIST_SIZE = 10
LIST_SIZES = {
    "Query.customers": 100,  # at most MAX_CUSTOMERS ids (hub.api.schema)
    "Query.callbacks": 200,  # MAX_CALLBACKS
    "Query.offers": 50,
    "Query.flows": 20,
    "Customer.nextBestActions": 20,  # MAX_NBA_LIMIT (hub.api.context)
    "Subscription.nextBestActions": 20,
    "Campaign.leads": 1000,
}
_SIZE_ARGUMENTS = ("limit", "first", "last")


def _coded(rule: Any, code: str) -> type[ValidationRule]:
    """The rule, with `code` on every error it reports (strawberry's limiters report uncoded ones)."""

    class Coded(rule):  # type: ignore[misc]
        def __init__(self, context: ValidationContext) -> None:
            report = context.report_error

            def coded(error: GraphQLError) -> None:
                error.extensions = {**(error.extensions or {}), "code": code}
                report(error)

            setattr(context, "report_error", coded)  # noqa: B010 - the limiters report while constructed
            try:
                super().__init__(context)
            finally:
                delattr(context, "report_error")

        def report_error(self, error: GraphQLError) -> None:
            error.extensions = {**(error.extensions or {}), "code": code}
            super().report_error(error)

    Coded.__name__ = f"Coded{rule.__name__}"
    return Coded


class _TooCostly(Exception):
    pass


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    ceiling: int,
) -> int:
    """The operation's cost, or a number above `ceiling` as soon as it passes it."""
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    memo: dict[str, int] = {}
    visiting: set[str] = set()

    def selections(node: SelectionSetNode | None, parent: Any, depth: int) -> int:
        if node is None or depth > 64:  # deeper documents are refused by the depth rule
            return 0
        total = 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                total += field(selection, parent, depth)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                typ = schema.get_type(condition.name.value) if condition else parent
                total += selections(selection.selection_set, typ, depth)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragment(selection.name.value, depth)
            if total > ceiling:
                raise _TooCostly
        return total

    def fragment(name: str, depth: int) -> int:
        if name in memo:
            return memo[name]
        definition = fragments.get(name)
        if definition is None or name in visiting:  # unknown or a cycle: validation says so
            return 0
        visiting.add(name)
        try:
            typ = schema.get_type(definition.type_condition.name.value)
            cost = selections(definition.selection_set, typ, depth)
        finally:
            visiting.discard(name)
        memo[name] = cost
        return cost

    def field(node: FieldNode, parent: Any, depth: int) -> int:
        name = node.name.value
        if name.startswith("__") or not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 0  # introspection (off by HUB_INTROSPECTION) and unknown fields (validation)
        definition = parent.fields.get(name)
        if definition is None:
            return 0
        if node.selection_set is None:
            return 1  # a value, or a list of values
        below = selections(node.selection_set, get_named_type(definition.type), depth + 1)
        if not _is_list(definition.type):
            return 1 + below
        return 1 + _list_size(node, definition, f"{parent.name}.{name}") * below

    try:
        return selections(operation.selection_set, root, 0)
    except _TooCostly:
        return ceiling + 1


def _is_list(typ: Any) -> bool:
    if isinstance(typ, GraphQLNonNull):
        typ = typ.of_type
    return isinstance(typ, GraphQLList)


def _list_size(node: FieldNode, definition: Any, coordinate: str) -> int:
    given = {a.name.value: a.value for a in node.arguments or ()}
    most = LIST_SIZES.get(coordinate, DEFAULT_LIST_SIZE)
    for name in _SIZE_ARGUMENTS:
        if name not in definition.args:
            continue
        value = given.get(name)
        if isinstance(value, IntValueNode):
            return max(int(value.value), 0)
        if value is None and isinstance(definition.args[name].default_value, int):
            return max(definition.args[name].default_value, 0)
        return most
    for name, argument in definition.args.items():
        if _is_list(argument.type):
            value = given.get(name)
            if isinstance(value, ListValueNode):
                return len(value.values)
            if isinstance(value, VariableNode):
                return most
    return most


def cost_rule(max_cost: int) -> type[ValidationRule]:
    class QueryCost(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            fragments = {
                d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
            }
            for operation in document.definitions:
                if not isinstance(operation, OperationDefinitionNode):
                    continue
                cost = operation_cost(context.schema, operation, fragments, max_cost)
                if cost > max_cost:
                    name = operation.name.value if operation.name else "the operation"
                    context.report_error(
                        GraphQLError(
                            f"{name} may cost more than {max_cost} (the most one operation may cost): "
                            "each list multiplies what is selected under it; ask for fewer items or "
                            "nest fewer lists",
                            operation,
                            extensions={"code": QUERY_TOO_COMPLEX, "maxCost": max_cost},
                        )
                    )

    return QueryCost


def edge_rules(*, max_depth: int, max_aliases: int, max_cost: int, introspection: bool) -> list[Any]:
    """The rules, made once per schema (the validation cache is keyed by the rule classes)."""
    coded: Callable[[Any, str], type[ValidationRule]] = _coded
    depth = QueryDepthLimiter(max_depth=max_depth).validation_rules
    aliases = MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules
    rules = [
        *(coded(r, QUERY_TOO_DEEP) for r in depth),
        *(coded(r, TOO_MANY_ALIASES) for r in aliases),
        cost_rule(max_cost),
    ]
    if not introspection:
        rules.append(coded(NoSchemaIntrospectionCustomRule, INTROSPECTION_DISABLED))
    return rules
