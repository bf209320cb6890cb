"""The scope guard: each field in hub.security.scopes.RULES needs its scope, in the SDL and at run time.

Both come from the one table. Before the schema is built, every listed field gets the directive
`@requiresScopes(scopes: [["<scope>"]])`: Apollo Federation's own (2.5+, imported through the SDL's
`@link`, its argument `[[federation__Scope!]!]!`), so a supergraph router enforces the same rules; a
field that needs only an authenticated caller (AUTHENTICATED) gets federation's `@authenticated`. After,
the field's resolver (or a subscription's source) is wrapped to refuse a caller without the scope: a
FORBIDDEN error naming scope and field, the resolver never runs (nothing is recorded), and a nullable
field is null. Only listed fields pay for the check.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from graphql import GraphQLObjectType, GraphQLSchema
from strawberry.federation.schema_directives import Authenticated, RequiresScopes
from strawberry.utils.str_converters import to_camel_case

from hub.core.errors import Forbidden
from hub.security.principal import NOBODY
from hub.security.scopes import AUTHENTICATED, RULES

ROOTS = ("Query", "Mutation", "Subscription")


def declare(types: Iterable[type]) -> None:
    """Put the directive on every field the table lists (run once, before the schema is built)."""
    for cls in types:
        definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
        for field in definition.fields:
            name = field.graphql_name or to_camel_case(field.python_name)
            scope = RULES.get(f"{definition.name}.{name}")
            if scope is None or any(isinstance(d, RequiresScopes | Authenticated) for d in field.directives):
                continue
            directive = Authenticated() if scope == AUTHENTICATED else RequiresScopes(scopes=[[scope]])
            field.directives.append(directive)


def enforce(schema: GraphQLSchema) -> None:
    """Wrap the listed fields' resolvers. Every root field must be listed: default deny."""
    missing = [
        f"{root}.{name}"
        for root in ROOTS
        if isinstance(schema.type_map.get(root), GraphQLObjectType)
        for name in schema.type_map[root].fields  # type: ignore[attr-defined]
        if f"{root}.{name}" not in RULES and not name.startswith("_")
    ]
    if missing:
        raise RuntimeError(f"root fields without a scope in hub.security.scopes.RULES: {', '.join(missing)}")
    for coordinate, scope in RULES.items():
        type_name, _, field_name = coordinate.partition(".")
        gql_type = schema.type_map.get(type_name)
        if not isinstance(gql_type, GraphQLObjectType) or field_name not in gql_type.fields:
            continue  # a rule for a field this build does not have (e.g. a type not in use)
        field = gql_type.fields[field_name]
        if type_name == "Subscription":
            field.subscribe = _guarded(field.subscribe, scope, coordinate)
        else:
            field.resolve = _guarded(field.resolve, scope, coordinate)


def _guarded(resolve: Callable[..., Any] | None, scope: str, coordinate: str) -> Callable[..., Any]:
    if resolve is None:  # a plain attribute: graphql-core's default resolver reads it
        from graphql import default_field_resolver

        resolve = default_field_resolver
    message = f"{coordinate} needs the scope {scope!r}"
    if scope == AUTHENTICATED:
        message = f"{coordinate} needs an authenticated caller"

    def check(info: Any) -> None:
        principal = info.context.principal
        if scope == AUTHENTICATED:
            if principal.kind == NOBODY.kind:
                raise Forbidden(message, field=coordinate)
        elif not principal.allows(scope):
            raise Forbidden(message, scope=scope, field=coordinate)

    if inspect.iscoroutinefunction(resolve):

        async def guarded_async(source: Any, info: Any, **args: Any) -> Any:
            check(info)
            return await resolve(source, info, **args)

        return guarded_async

    def guarded(source: Any, info: Any, **args: Any) -> Any:
        check(info)
        return resolve(source, info, **args)

    return guarded
