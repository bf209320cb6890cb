"""`hub schema diff`: the code's SDL against the published one, as CI runs it (the real command)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from hub.cli import SDL_PATH

HUB = str(Path(sys.executable).with_name("hub"))


def hub(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUB, *args], capture_output=True, text=True, timeout=120, input=stdin,
                          env=dict(os.environ))


def published_with(tmp_path: Path, edit) -> Path:
    path = tmp_path / "published.graphql"
    path.write_text(edit(SDL_PATH.read_text(encoding="utf-8")), encoding="utf-8")
    return path


def with_query_field(sdl: str) -> str:
    """A published schema that had one more root field: the code has removed it."""
    return sdl.replace("type Query {\n", "type Query {\n  legacyScore(customerId: ID!): Int!\n", 1)


REMOVED = "Field Query.legacyScore was removed."


def test_the_repository_schema_passes():
    out = hub("schema", "diff")
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"schema diff: \d+ breaking \(0 not accepted\)", out.stdout), out.stdout


def test_a_removed_field_fails_and_is_named(tmp_path):
    published = published_with(tmp_path, with_query_field)
    out = hub("schema", "diff", "--published", str(published), "--accepted", str(tmp_path / "none.yaml"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"breaking  FIELD_REMOVED: {REMOVED}  (not accepted)" in out.stdout
    assert "1 breaking (1 not accepted)" in out.stdout
    assert "record each in" in out.stderr


def test_a_recorded_removal_passes(tmp_path):
    published = published_with(tmp_path, with_query_field)
    accepted = tmp_path / "accepted-changes.yaml"
    accepted.write_text(yaml.safe_dump({"accepted": [
        {"change": REMOVED, "reason": "no channel reads it (release 0.4 notes)"},
        {"change": "Field Customer.gone was removed.", "reason": "already re-exported"},
    ]}), encoding="utf-8")
    out = hub("schema", "diff", "--published", str(published), "--accepted", str(accepted))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{REMOVED}  (accepted: no channel reads it (release 0.4 notes))" in out.stdout
    assert "1 breaking (0 not accepted)" in out.stdout
    # An entry the diff no longer finds is pointed out, not an error.
    assert "not found any more" in out.stdout and "Customer.gone" in out.stdout


def test_additions_and_dangerous_changes_pass(tmp_path):
    def older(sdl: str) -> str:
        # The published schema lacked a root field and an enum value the code has now.
        sdl = re.sub(r'\n(  """[^\n]*"""\n)?  offers: \[Offer!\]![^\n]*', "", sdl, count=1)
        return sdl.replace("enum Channel {\n  WEBSITE\n  EMAIL\n  CALLCENTER\n  SHOP\n}",
                           "enum Channel {\n  WEBSITE\n  EMAIL\n  CALLCENTER\n}", 1)

    published = published_with(tmp_path, older)
    assert published.read_text() != SDL_PATH.read_text()
    out = hub("schema", "diff", "--published", "-", stdin=published.read_text())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "added     FIELD_ADDED: Field Query.offers was added." in out.stdout
    assert "dangerous VALUE_ADDED_TO_ENUM: Enum value Channel.SHOP was added." in out.stdout
    assert "0 breaking" in out.stdout


def test_a_changed_field_type_is_breaking(tmp_path):
    published = published_with(tmp_path, lambda s: s.replace("  offers: [Offer!]!", "  offers: [String!]!", 1))
    out = hub("schema", "diff", "--published", str(published), "--accepted", str(tmp_path / "none.yaml"))
    assert out.returncode == 1
    assert "FIELD_CHANGED_KIND: Field Query.offers changed type from [String!]! to [Offer!]!." in out.stdout


def test_directive_removals_break_only_when_operations_can_use_them(tmp_path):
    # A directive that annotates the schema (as @requiresScopes does) is in no channel's documents: its
    # removal is listed as dangerous. One that operations may carry (on FIELD) breaks them.
    def extra(directive: str):
        return lambda sdl: f"{directive}\n\n{sdl}"

    schema_only = published_with(tmp_path, extra("directive @owner(team: String) on FIELD_DEFINITION"))
    out = hub("schema", "diff", "--published", str(schema_only), "--accepted", str(tmp_path / "none.yaml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "dangerous DIRECTIVE_REMOVED: Directive @owner was removed." in out.stdout
    (tmp_path / "q").mkdir()
    executable = published_with(tmp_path / "q", extra("directive @cached(ttl: Int) on FIELD | QUERY"))
    out = hub("schema", "diff", "--published", str(executable), "--accepted", str(tmp_path / "none.yaml"))
    assert out.returncode == 1
    assert "breaking  DIRECTIVE_REMOVED: Directive @cached was removed.  (not accepted)" in out.stdout


def test_bad_inputs_exit_2_with_a_reason(tmp_path):
    bad = tmp_path / "accepted.yaml"
    bad.write_text("accepted:\n  - change: Field Query.x was removed.\n", encoding="utf-8")
    out = hub("schema", "diff", "--accepted", str(bad))
    assert out.returncode == 2
    assert "accepted.0.reason" in out.stderr and "Traceback" not in out.stderr
    broken = tmp_path / "broken.graphql"
    broken.write_text("type Query {", encoding="utf-8")
    out = hub("schema", "diff", "--published", str(broken))
    assert out.returncode == 2 and "not a valid GraphQL SDL" in out.stderr
    out = hub("schema", "diff", "--published", str(tmp_path / "missing.graphql"))
    assert out.returncode == 2 and "no published schema" in out.stderr


def test_schema_export_is_export_schema(tmp_path):
    new = hub("schema", "export", "--output", "-")
    old = hub("export-schema", "--output", "-")
    assert new.returncode == old.returncode == 0
    assert new.stdout == old.stdout and "type Query {" in new.stdout
    written = hub("schema", "export", "--output", str(tmp_path / "out.graphql"))
    assert written.returncode == 0
    assert (tmp_path / "out.graphql").read_text(encoding="utf-8") == new.stdout


def test_the_shipped_accepted_changes_file_is_valid():
    from hub.cli.schema import ACCEPTED_PATH, load_accepted

    assert ACCEPTED_PATH.is_file()
    load_accepted(ACCEPTED_PATH)
