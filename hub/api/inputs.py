"""What a caller sends is checked by size and by character before any of it is converted or used, the
same on every store and both transports:

- the operation to run is named when the document holds several (never the first one by default);
- every list in the variables and in the document is at most as long as the place it goes allows
  (LIST_LIMITS, else `max_input_list`), checked on the raw JSON before graphql-core converts it, so a
  huge list is refused at once instead of converted in full first;
- every string is at most as long as its field allows (STRING_LIMITS: the columns it is written to,
  else MAX_ID / MAX_STRING) and holds no control character other than tab, line feed and carriage
  return (PostgreSQL refuses NUL; SQLite stores it);
- the variables hold at most MAX_VALUES values in all.

A refusal is one GraphQL error with `extensions.code` (BAD_USER_INPUT, or the place's own code) and
`extensions.field` naming the input; values are never echoed. Runs right after validation
(hub.api.prepared), so it holds for HTTP and websocket alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLID,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
    get_named_type,
    specified_scalar_types,
)
from graphql.utilities import type_from_ast

from hub.core.events import MAX_TOPIC
from hub.core.leads import MAX_CUSTOMERS as MAX_CAMPAIGN_CUSTOMERS
from hub.core.requests import DETAILS_MAX, NOTE_MAX, SUBJECT_MAX

BAD_USER_INPUT = "BAD_USER_INPUT"
BAD_REQUEST = "BAD_REQUEST"
# Any string without a limit of its own: identifiers (looked up, never stored as given: an unknown one
# is answered as unknown), and other text.
MAX_ID = 10_000
MAX_STRING = 4000
MAX_VALUES = 50_000  # values in one operation's variables, all lists and objects counted
MAX_ENUM = 100  # an enum value's name
MAX_JSON_DEPTH = 16  # nesting of a free JSON value (a JSON scalar input)
MAX_CUSTOMERS = 100  # Query.customers: hub.api.schema.MAX_CUSTOMERS (a test holds them equal)

# The most characters of a string input, by schema coordinate: `Type.field(arg:)` for an argument,
# `Input.field` for an input field. Every String input of the schema is listed (a test holds it so):
# a new text field states what its columns hold.
STRING_LIMITS: dict[str, int] = {
    "IdentificationInput.email": 254,  # RFC 5321; customer_keys.value holds 320
    "IdentificationInput.phone": 64,
    "IdentificationInput.customerId": 200,  # normalize_token
    "IdentificationInput.customerNumber": 200,
    "IdentificationInput.cookieId": 200,
    "StartContactInput.name": 200,  # crm customers.name
    "ContactEventInput.topic": MAX_TOPIC,
    "SubmitRequestInput.subject": SUBJECT_MAX,  # crm requests.subject
    "SubmitRequestInput.details": DETAILS_MAX,
    "SystemKeyInput.system": 60,  # customer_keys.kind
    "SystemKeyInput.id": 200,
    "Query.customerByKey(email:)": 254,
    "Query.customerByKey(phone:)": 64,
    "Query.customerByKey(cookieId:)": 200,
    "Query.customerByKey(customerNumber:)": 200,
    "Mutation.endContact(outcome:)": 200,  # contacts.outcome
    "Mutation.recordLeadResponse(code:)": 200,  # a longer code is no lead's
    "Mutation.updateRequestStatus(note:)": NOTE_MAX,  # crm request_history.note
    "Query.auditLog(who:)": 200,  # audit_log.who
    "Query.auditLog(action:)": 120,  # audit_log.action
    "Query.deadLetters(queue:)": 200,  # a queue's name
    "Mutation.runFlow(name:)": 200,  # a flow's name
}
# The most items of a list input, and the code a longer one is refused with (else `max_input_list`).
LIST_LIMITS: dict[str, tuple[int, str]] = {
    "Query.customers(ids:)": (MAX_CUSTOMERS, BAD_USER_INPUT),
    "LaunchCampaignInput.customerIds": (MAX_CAMPAIGN_CUSTOMERS, BAD_USER_INPUT),
    "LaunchCampaignInput.channels": (10, BAD_USER_INPUT),
    "Mutation.replayDeadLetters(ids:)": (1000, BAD_USER_INPUT),  # hub.core.operations.MAX_IDS
}
EVENTS = "Mutation.recordContactEvents(events:)"
# Control characters (but tab, line feed, carriage return), DEL, and lone surrogates.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_TEXT_SCALARS = frozenset(specified_scalar_types) - {"Int", "Float", "Boolean"}


class Refused(Exception):
    def __init__(self, message: str, where: str, code: str = BAD_USER_INPUT, **extensions: object):
        super().__init__(message)
        self.error = GraphQLError(message, extensions={"code": code, "field": where, **extensions})


@dataclass(frozen=True)
class InputLimits:
    max_input_list: int = 1000
    max_events_per_call: int = 100
    lists: Mapping[str, tuple[int, str]] = field(default_factory=lambda: LIST_LIMITS)
    strings: Mapping[str, int] = field(default_factory=lambda: STRING_LIMITS)

    def list_limit(self, coordinate: str | None) -> tuple[int, str]:
        if coordinate == EVENTS:
            return self.max_events_per_call, "TOO_MANY_EVENTS"
        if coordinate is not None and coordinate in self.lists:
            return self.lists[coordinate]
        return self.max_input_list, BAD_USER_INPUT


def check_string(value: str, where: str, most: int) -> None:
    if len(value) > most:
        raise Refused(f"{where} must be at most {most} characters, got {len(value)}", where)
    if _FORBIDDEN.search(value):
        raise Refused(
            f"{where} holds a control character: only tab, line feed and carriage return are allowed", where
        )


class _Walk:
    """One operation's values, checked against the types and places they go to."""

    def __init__(self, limits: InputLimits):
        self.limits = limits
        self.values = 0

    def count(self, n: int) -> None:
        self.values += n
        if self.values > MAX_VALUES:
            raise Refused(f"the variables hold more than {MAX_VALUES} values", "variables")

    def string(self, value: str, where: str, coordinate: str | None, typ: Any) -> None:
        most = self.limits.strings.get(coordinate or "")
        if most is None:
            most = MAX_ID if typ is GraphQLID else MAX_STRING
        check_string(value, where, most)

    def items(self, n: int, where: str, coordinate: str | None) -> None:
        most, code = self.limits.list_limit(coordinate)
        if n > most:
            raise Refused(f"{where} holds {n} items; at most {most} are allowed", where, code, limit=most)

    def value(self, value: Any, typ: Any, where: str, coordinate: str | None) -> None:
        """A raw JSON value (from the variables) where graphql-core will coerce it to `typ`."""
        if value is None:
            return
        if isinstance(typ, GraphQLNonNull):
            typ = typ.of_type
        self.count(1)
        if isinstance(typ, GraphQLList):
            if not isinstance(value, list):
                self.value(value, typ.of_type, where, coordinate)  # coerced as a list of one
                return
            self.items(len(value), where, coordinate)
            self.count(len(value))
            for n, item in enumerate(value):
                self.value(item, typ.of_type, f"{where}[{n}]", coordinate)
            return
        if isinstance(typ, GraphQLInputObjectType):
            if isinstance(value, dict):
                for name, input_field in typ.fields.items():
                    if name in value:
                        self.value(value[name], input_field.type, f"{where}.{name}", f"{typ.name}.{name}")
            return  # anything else: graphql-core refuses it, naming the type
        if isinstance(typ, GraphQLEnumType):
            if isinstance(value, str) and len(value) > MAX_ENUM:
                raise Refused(f"{where} is not a {typ.name} value", where)
            return  # graphql-core accepts only the enum's names
        if isinstance(value, str):
            self.string(value, where, coordinate, typ)
        elif isinstance(value, list | dict) and _free(typ):
            self.free(value, where)  # a custom scalar (JSON) takes any shape

    def free(self, value: Any, where: str) -> None:
        """A free JSON value: bounded in depth and size, its strings (keys too) checked."""
        stack: list[tuple[Any, int]] = [(value, 0)]
        while stack:
            item, depth = stack.pop()
            if depth > MAX_JSON_DEPTH:
                raise Refused(f"{where} is nested more than {MAX_JSON_DEPTH} levels deep", where)
            if isinstance(item, dict):
                self.count(len(item))
                for key, inner in item.items():
                    check_string(key, where, MAX_STRING)
                    stack.append((inner, depth + 1))
            elif isinstance(item, list):
                self.count(len(item))
                stack.extend((inner, depth + 1) for inner in item)
            elif isinstance(item, str):
                check_string(item, where, MAX_STRING)

    def literal(
        self,
        node: ValueNode,
        typ: Any,
        where: str,
        coordinate: str | None,
        uses: dict[str, set[str | None]],
    ) -> None:
        """A value written in the document; the variables it holds are noted with their places."""
        if isinstance(node, VariableNode):
            uses.setdefault(node.name.value, set()).add(coordinate)
            return
        if isinstance(typ, GraphQLNonNull):
            typ = typ.of_type
        if isinstance(typ, GraphQLList):
            if isinstance(node, ListValueNode):
                self.items(len(node.values), where, coordinate)
                for n, item in enumerate(node.values):
                    self.literal(item, typ.of_type, f"{where}[{n}]", coordinate, uses)
            else:
                self.literal(node, typ.of_type, where, coordinate, uses)
        elif isinstance(typ, GraphQLInputObjectType) and isinstance(node, ObjectValueNode):
            for given in node.fields:
                name = given.name.value
                input_field = typ.fields.get(name)
                if input_field is not None:
                    self.literal(given.value, input_field.type, f"{where}.{name}", f"{typ.name}.{name}", uses)
        elif isinstance(node, StringValueNode) and not isinstance(typ, GraphQLEnumType):
            self.string(node.value, where, coordinate, typ)
        elif isinstance(node, ListValueNode | ObjectValueNode):
            for inner in _inner_values(node):  # a free JSON value written out: its strings
                self.literal(inner, None, where, None, uses)


def _free(typ: Any) -> bool:
    return isinstance(typ, GraphQLScalarType) and typ.name not in _TEXT_SCALARS


def _inner_values(node: ValueNode) -> Iterator[ValueNode]:
    if isinstance(node, ListValueNode):
        yield from node.values
    elif isinstance(node, ObjectValueNode):
        yield from (f.value for f in node.fields)


@dataclass
class Plan:
    """What one operation of a document needs checked on each call: found once, kept per document."""

    error: GraphQLError | None = None
    variables: dict[str, tuple[GraphQLInputType, set[str | None]]] = field(default_factory=dict)


def plan(
    schema: GraphQLSchema, document: Any, operation_name: str | None, limits: InputLimits
) -> Plan:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None and len(operations) > 1:
        return Plan(
            GraphQLError(
                "Must provide operation name if query contains multiple operations: the document holds "
                f"{len(operations)}; name the one to run in operationName.",
                extensions={"code": BAD_REQUEST},
            )
        )
    if operation_name is None:
        operation = operations[0] if operations else None
    else:
        operation = next((o for o in operations if o.name and o.name.value == operation_name), None)
    if operation is None:
        return Plan()  # strawberry refuses it before validation
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    walk = _Walk(limits)
    uses: dict[str, set[str | None]] = {}
    seen: set[str] = set()

    def selections(node: SelectionSetNode | None, parent: Any, depth: int) -> None:
        if node is None or depth > 64:
            return
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                definition = (
                    parent.fields.get(selection.name.value)
                    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
                    else None
                )
                if definition is None:
                    continue
                for argument in selection.arguments or ():
                    arg = definition.args.get(argument.name.value)
                    if arg is not None:
                        coordinate = f"{parent.name}.{selection.name.value}({argument.name.value}:)"
                        walk.literal(argument.value, arg.type, argument.name.value, coordinate, uses)
                selections(selection.selection_set, get_named_type(definition.type), depth + 1)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                typ = schema.get_type(condition.name.value) if condition else parent
                selections(selection.selection_set, typ, depth)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in seen or name not in fragments:
                    continue
                seen.add(name)
                spread = fragments[name]
                selections(spread.selection_set, schema.get_type(spread.type_condition.name.value), depth)

    try:
        selections(operation.selection_set, schema.get_root_type(operation.operation), 0)
    except Refused as refused:
        return Plan(refused.error)
    variables: dict[str, tuple[GraphQLInputType, set[str | None]]] = {}
    for definition in operation.variable_definitions or ():
        typ = type_from_ast(schema, definition.type)  # type: ignore[arg-type]
        if typ is not None:
            name = definition.variable.name.value
            variables[name] = (typ, uses.get(name) or {None})  # type: ignore[assignment]
    return Plan(variables=variables)


def check_variables(
    planned: Plan, variables: Mapping[str, Any] | None, limits: InputLimits
) -> GraphQLError | None:
    if planned.error is not None:  # a fresh error per request: the plan is shared
        return GraphQLError(planned.error.message, extensions=dict(planned.error.extensions or {}))
    if not variables:
        return None
    walk = _Walk(limits)
    try:
        for name, (typ, places) in planned.variables.items():
            if name in variables:
                for place in places:
                    walk.value(variables[name], typ, name, place)
    except Refused as refused:
        return refused.error
    return None
