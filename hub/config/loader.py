"""YAML config loading that remembers where every value came from.

A broken mapping is reported as `file:line:column: field: message`, so an architect (and an editor
that jumps to `file:line:column`) can fix it without guessing. Validation is pydantic; this module
maps pydantic's error locations back to YAML lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    field: str
    message: str
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.field}: {self.message}"


class MappingError(ValueError):
    """One or more problems in mapping files; str() lists each as file:line:column: field: message."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(slots=True)
class Located:
    """Plain Python data from a YAML document plus the line of every path in it."""

    file: str
    data: Any
    lines: dict[Loc, tuple[int, int]]  # path -> (line, column), both from 1

    def mark_of(self, loc: Loc) -> tuple[int, int]:
        # The deepest located prefix: an unknown or missing field points at its parent mapping.
        for end in range(len(loc), -1, -1):
            mark = self.lines.get(tuple(loc[:end]))
            if mark is not None:
                return mark
        return (1, 1)

    def line_of(self, loc: Loc) -> int:
        return self.mark_of(loc)[0]

    def problem(self, loc: Loc, message: str) -> Problem:
        line, column = self.mark_of(loc)
        return Problem(self.file, line, _dotted(loc), message, column)


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _construct(node: yaml.Node, path: Loc, lines: dict[Loc, tuple[int, int]], file: str) -> Any:
    lines[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node)) if not isinstance(key_node, yaml.ScalarNode) else (
                key_node.value
            )
            if key in out:
                line, column = _mark(key_node)
                raise MappingError([Problem(file, line, _dotted((*path, key)), "duplicate key", column)])
            out[key] = _construct(value_node, (*path, key), lines, file)
            lines[(*path, key)] = _mark(key_node)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), lines, file) for i, item in enumerate(node.value)]
    # Scalars: let the safe loader resolve ints, floats, bools, nulls and dates.
    return yaml.safe_load(yaml.serialize(node))


def load_located(path: Path | str, text: str | None = None) -> Located:
    path = Path(path)
    file = str(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise MappingError([Problem(file, 1, "(document)", f"cannot read: {exc.strerror}")]) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = Problem(file, line, "(document)", f"invalid YAML: {exc.problem}", column)
        raise MappingError([problem]) from exc
    lines: dict[Loc, tuple[int, int]] = {}
    data = {} if node is None else _construct(node, (), lines, file)
    return Located(file, data, lines)


def validate(located: Located, model: type[M], *, at: Loc = ()) -> M:
    """Validate (part of) a located document against a pydantic model, with lines in the errors."""
    data = located.data
    for part in at:
        data = data[part]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = (*at, *_clean_loc(err["loc"]))
            problems.append(located.problem(loc, err["msg"]))
        raise MappingError(problems) from None


def _clean_loc(loc: Iterable[Any]) -> Loc:
    # pydantic adds union/tag names ("function-after[...]") that are not YAML paths.
    return tuple(p for p in loc if isinstance(p, int) or ("[" not in str(p) and "(" not in str(p)))


def load_model(path: Path | str, model: type[M]) -> tuple[M, Located]:
    located = load_located(path)
    return validate(located, model), located
