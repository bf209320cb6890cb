"""Input values into the hub's input types with a plan per type made once: which GraphQL names go to
which fields, and which values need converting at all.

Strawberry, unless a type builds its own value (`from_input`, its hook for this), walks each input
field's annotation, name conversion and type checks on every request. Most of the hub's input values
are scalars and enums that graphql-core has already coerced: those are taken as they are. Nested input
objects, lists of them and anything else go through strawberry's own conversion (`InputContext.convert`),
which comes back here for the hub's types. (Measured: bench/RESULTS.md, sixth session.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import MISSING
from typing import Any

from strawberry.relay.types import GlobalID
from strawberry.scalars import is_scalar
from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryObjectDefinition,
    StrawberryOptional,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition

TAKEN = "taken"  # the value as graphql-core coerced it
COPIED = "copied"  # a list of such values, copied (graphql-core shares a default's list)
CONVERTED = "converted"  # strawberry's conversion


def install(definitions: Iterable[object]) -> None:
    """Give each input type among a schema's type definitions its plan (those that build their own value
    keep their way)."""
    for definition in definitions:
        if isinstance(definition, StrawberryObjectDefinition) and definition.is_input:
            if definition.from_input is None:
                definition.from_input = _Builder(definition)


class _Builder:
    def __init__(self, definition: StrawberryObjectDefinition):
        self._definition = definition
        # (GraphQL name, Python name, how, type); made at the first value, once every type is known
        self._fields: list[tuple[str, str, str, Any]] | None = None
        self._nones: dict[str, None] = {}

    def __call__(self, cls: type, value: Mapping[str, Any], context: InputContext) -> Any:
        fields = self._fields if self._fields is not None else self._plan(context)
        kwargs: dict[str, Any] = dict(self._nones)
        for name, python_name, how, type_ in fields:
            if name not in value:
                continue
            given = value[name]
            if given is None or how == TAKEN:
                kwargs[python_name] = given
            elif how == COPIED:
                kwargs[python_name] = list(given)
            else:
                kwargs[python_name] = context.convert(given, type_, name)
        return cls(**kwargs)

    def _plan(self, context: InputContext) -> list[tuple[str, str, str, Any]]:
        definition = self._definition
        registry = context.scalar_registry
        fields = []
        for field in definition.fields:
            type_ = field.resolve_type(type_definition=definition)
            name = context.config.name_converter.from_field(field)
            fields.append((name, field.python_name, _how(type_, registry), type_))
        # Fields without a default are None when not given (strawberry's rule: graphql-core has checked
        # the required ones are there).
        self._nones = {
            f.python_name: None for f in definition.fields
            if f.default_value is MISSING and f.default_factory is MISSING
        }
        self._fields = fields
        return fields


def _how(type_: Any, registry: Mapping[object, Any]) -> str:
    if isinstance(type_, StrawberryMaybe):
        return CONVERTED  # wrapped in Some by strawberry
    if isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    if _leaf(type_, registry):
        return TAKEN
    if isinstance(type_, StrawberryList):
        inner = type_.of_type
        inner = inner.of_type if isinstance(inner, StrawberryOptional) else inner
        return COPIED if _leaf(inner, registry) else CONVERTED
    return CONVERTED


def _leaf(type_: Any, registry: Mapping[object, Any]) -> bool:
    if type_ is GlobalID:
        return False  # decoded by strawberry
    enum = isinstance(type_, StrawberryEnumDefinition) or has_enum_definition(type_)
    return enum or is_scalar(type_, registry)
