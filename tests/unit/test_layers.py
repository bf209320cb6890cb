"""The rules of the house, checked on the imports: data flows one way (api -> core -> ports ->
adapters), adapters import only the SDK, nothing below the API knows GraphQL, the model is pure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts)


def offending(folder: str, allowed) -> dict[str, list[str]]:
    out = {}
    for path in modules(folder):
        bad = sorted(m for m in imports_of(path) if not allowed(m))
        if bad:
            out[str(path.relative_to(ROOT))] = bad
    return out


def _hub(m: str) -> bool:
    return m == "hub" or m.startswith("hub.")


def test_adapters_import_only_the_sdk_model_and_events():
    sdk = ("hub.ports", "hub.model", "hub.events")
    assert offending(
        "adapters",
        lambda m: not _hub(m) or any(m == s or m.startswith(s + ".") for s in sdk),
    ) == {}


@pytest.mark.parametrize("folder", ["hub/model"])
def test_the_model_is_pure(folder):
    stdlib_only = {"__future__", "enum", "dataclasses", "datetime", "typing"}
    assert offending(folder, lambda m: m.split(".")[0] in stdlib_only or m.startswith("hub.model")) == {}


@pytest.mark.parametrize("folder", ["hub/core", "hub/messaging", "hub/ports", "hub/model", "hub/events",
                                    "hub/config", "hub/store"])
def test_nothing_below_the_api_knows_graphql_or_concrete_adapters(folder):
    forbidden = ("hub.api", "hub.cli", "hub_adapters", "strawberry", "graphql", "starlette")
    assert offending(folder, lambda m: not any(m == f or m.startswith(f + ".") for f in forbidden)) == {}


def test_the_core_does_not_reach_into_the_runtime_or_registry():
    assert offending("hub/core", lambda m: m not in {"hub.runtime", "hub.registry"}) == {}


def test_roles_are_one_table():
    """Role names are spelled in hub/roles.py; the rest of the code uses its constants."""
    names = ("contact_registry", "decision_engine", "lead_manager", "outbound_channel", "event_destination")
    spelled = {}
    for path in modules("hub"):
        if path.name == "roles.py":
            continue
        text = path.read_text(encoding="utf-8")
        hits = [n for n in names if f'"{n}"' in text or f"'{n}'" in text]
        if hits:
            spelled[str(path.relative_to(ROOT))] = hits
    assert spelled == {}
