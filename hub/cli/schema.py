"""`hub schema`: the GraphQL contract. `export` writes the code's SDL (as `hub export-schema`); `diff`
compares it with the published schema/schema.graphql and fails on a breaking change that is not
recorded in schema/accepted-changes.yaml.

Breaking and dangerous changes are graphql-core's (`find_breaking_changes`, `find_dangerous_changes`):
a removed type or field, a changed field type, a new required argument or input field, a removed enum
value, ... are breaking; a new enum value, an optional argument or a changed default are dangerous
(printed, never failing). Additions are listed and are fine."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.cli.common import FAILED, INVALID
from hub.cli.server import SDL_PATH, export_schema

ACCEPTED_PATH = SDL_PATH.with_name("accepted-changes.yaml")

app = typer.Typer(
    help="The GraphQL schema: export it, and check the code's against the published one.",
    no_args_is_help=True,
)


class AcceptedChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    change: str = Field(min_length=1, description="the change's description, as `hub schema diff` prints it")
    reason: str = Field(min_length=1, description="why it is accepted (who was told, which release)")


class AcceptedChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accepted: list[AcceptedChange] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # BREAKING, DANGEROUS or ADDED
    type: str  # graphql-core's change type (FIELD_REMOVED, ...), or what was added
    description: str


class SchemaInputError(Exception):
    """A published SDL or accepted-changes file that cannot be read: the caller's input, exit 2."""


def code_sdl() -> str:
    """The SDL the code serves: what `hub export-schema` writes."""
    from hub.api.schema import schema

    return schema.as_str() + "\n"


def _build(sdl: str, name: str) -> Any:
    from graphql import GraphQLError, build_ast_schema, parse

    try:
        return build_ast_schema(parse(sdl), assume_valid_sdl=True)
    except (GraphQLError, TypeError) as exc:
        raise SchemaInputError(f"{name} is not a valid GraphQL SDL: {exc}") from None


def _added(old: Any, new: Any) -> list[Change]:
    from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLInterfaceType, GraphQLObjectType

    out: list[Change] = []
    for name, kind in sorted(new.type_map.items()):
        if name.startswith("__"):
            continue
        before = old.type_map.get(name)
        if before is None:
            out.append(Change("ADDED", "TYPE_ADDED", f"Type {name} was added."))
            continue
        if isinstance(kind, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType) and isinstance(
            before, type(kind)
        ):
            for field in sorted(set(kind.fields) - set(before.fields)):
                out.append(Change("ADDED", "FIELD_ADDED", f"Field {name}.{field} was added."))
        elif isinstance(kind, GraphQLEnumType) and isinstance(before, GraphQLEnumType):
            pass  # a new enum value is one of graphql-core's dangerous changes, listed there
    return out


_DIRECTIVE_CHANGES = {
    "DIRECTIVE_REMOVED", "DIRECTIVE_ARG_REMOVED", "REQUIRED_DIRECTIVE_ARG_ADDED",
    "DIRECTIVE_LOCATION_REMOVED", "DIRECTIVE_REPEATABLE_REMOVED",
}


def _schema_only_directive(old: Any, change_type: str, description: str) -> bool:
    """A change to a directive that only annotates the schema (`@requiresScopes` on a field definition, a
    federation directive) breaks no operation a channel sends: no document can use it. It is listed as
    dangerous (a gateway may read it), not breaking. Directives operations use (@include, @skip, a
    custom query directive) stay breaking."""
    from graphql import DirectiveLocation

    if change_type not in _DIRECTIVE_CHANGES:
        return False
    executable = {
        DirectiveLocation.QUERY, DirectiveLocation.MUTATION, DirectiveLocation.SUBSCRIPTION,
        DirectiveLocation.FIELD, DirectiveLocation.FRAGMENT_DEFINITION, DirectiveLocation.FRAGMENT_SPREAD,
        DirectiveLocation.INLINE_FRAGMENT, DirectiveLocation.VARIABLE_DEFINITION,
    }
    for name in re.findall(r"@(\w+)", description):
        directive = old.get_directive(name)
        if directive is None or set(directive.locations) & executable:
            return False
        return True
    return False


def diff_sdl(published: str, code: str) -> list[Change]:
    """Every change from the published SDL to the code's: breaking, dangerous, added."""
    from graphql import find_breaking_changes, find_dangerous_changes

    old = _build(published, "the published schema")
    new = _build(code, "the code's schema")
    changes = [
        Change("DANGEROUS" if _schema_only_directive(old, c.type.name, c.description) else "BREAKING",
               c.type.name, c.description)
        for c in find_breaking_changes(old, new)
    ]
    changes += [Change("DANGEROUS", c.type.name, c.description) for c in find_dangerous_changes(old, new)]
    return changes + _added(old, new)


def load_accepted(path: Path) -> AcceptedChanges:
    if not path.is_file():
        return AcceptedChanges()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return AcceptedChanges.model_validate(raw)
    except yaml.YAMLError as exc:
        raise SchemaInputError(f"{path}: not YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise SchemaInputError(f"{path}: {problems}") from None


@app.command("diff")
def diff(
    published: Annotated[
        Path,
        typer.Option(help="The published SDL to compare with; '-' reads it from stdin "
                     "(e.g. `git show v1.2:schema/schema.graphql | hub schema diff --published -`)."),
    ] = SDL_PATH,
    accepted: Annotated[
        Path, typer.Option(help="Breaking changes made on purpose: each its description and a reason.")
    ] = ACCEPTED_PATH,
) -> None:
    """Compare the code's GraphQL schema with the published one: print every change, and exit 1 on a
    breaking change not recorded in the accepted-changes file (dangerous changes and additions pass)."""
    try:
        if str(published) == "-":
            old = sys.stdin.read()
        elif published.is_file():
            old = published.read_text(encoding="utf-8")
        else:
            raise SchemaInputError(f"no published schema at {published} (give --published PATH)")
        recorded = load_accepted(accepted)
        changes = diff_sdl(old, code_sdl())
    except SchemaInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(INVALID) from None
    reasons = {a.change.strip(): a.reason for a in recorded.accepted}
    refused = 0
    for change in changes:
        line = f"{change.kind.lower():9} {change.type}: {change.description}"
        if change.kind == "BREAKING":
            reason = reasons.get(change.description.strip())
            if reason is None:
                refused += 1
                line += "  (not accepted)"
            else:
                line += f"  (accepted: {reason})"
        typer.echo(line)
    seen = {c.description.strip() for c in changes}
    for stale in sorted(set(reasons) - seen):
        typer.echo(f"note: accepted change not found any more (remove it from {accepted.name}): {stale}")
    breaking = sum(c.kind == "BREAKING" for c in changes)
    dangerous, added = (sum(c.kind == kind for c in changes) for kind in ("DANGEROUS", "ADDED"))
    typer.echo(
        f"schema diff: {breaking} breaking ({refused} not accepted), {dangerous} dangerous, {added} added"
    )
    if refused:
        typer.echo(
            f"breaking changes break channels coded against {published}: undo them, or record each in "
            f"{accepted} with a reason",
            err=True,
        )
        raise typer.Exit(FAILED)


app.command("export")(export_schema)
