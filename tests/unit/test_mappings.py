"""The deployment mapping is linted like code: every problem names file, line and field."""

from __future__ import annotations

import re
import shutil

import pytest

from hub.config import SHIPPED_MAPPINGS, Settings
from hub.config.loader import MappingError
from hub.registry import build_systems, load_mapping
from hub.store.db import create_engine


@pytest.fixture
def mappings(tmp_path):
    target = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, target)
    return target


def edit(path, old: str, new: str) -> int:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return next(i for i, row in enumerate(path.read_text().splitlines(), 1) if new.strip() and new.strip() in row)


def problems_of(mappings) -> list[str]:
    with pytest.raises(MappingError) as err:
        settings = Settings(mappings_dir=mappings)
        mapping, located = load_mapping(settings.mappings_dir)
        build_systems(mapping, located, settings, create_engine("sqlite+aiosqlite:///:memory:"))
    return [str(p) for p in err.value.problems]


def test_shipped_mapping_is_valid():
    mapping, _ = load_mapping(Settings().mappings_dir)
    assert {"crm", "cm"} <= set(mapping.systems)
    assert all(f.queue.startswith("flow.") for f in mapping.flows)


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("    mode: realtime\n", "    mode: hourly\n", "flows[0].mode", "realtime"),
        ("    destination: cm\n", "    destination: cms\n", "flows[0].destination", "no system named 'cms'"),
        ("    adapter: builtin-cm\n", "    adapter: builtin-cmx\n", "systems.cm.adapter", "unknown adapter"),
        ("  decision_engine: cm", "  decision_engine: crm", "roles.decision_engine", "DecisionEngine"),
        ("  attributes: [crm, cm]", "  attributes: [crm, web]", "survivorship.attributes[1]", "no system named"),
        ("    source: hub\n", "    sourse: hub\n", "flows[0].sourse", "Extra inputs"),
        ('    events: ["customer.*"]', '    events: ["customer..x"]', "flows[1].events", "not a routing-key"),
        ("      emails: emails\n", "      emials: emails\n", "systems.crm.profile.emials", "unknown unified field"),
        ("    key: id               #", "    key: loyalty_no       #", "systems.crm.key", "unknown key kind"),
        ("  attributes: [crm, cm]", "  attributes: newest", "survivorship.attributes", "newest needs updated_at"),
        ("  contact_registry: crm", "  contact_registry: [crm, cm]", "roles.contact_registry", "one system"),
    ],
)
def test_broken_mapping_names_file_line_and_field(mappings, old, new, field, message):
    line = edit(mappings / "hub.yaml", old, new)
    problems = problems_of(mappings)
    where = re.compile(rf"{re.escape(str(mappings / 'hub.yaml'))}:{line}:\d+: {re.escape(field)}:")
    assert any(where.match(p) and message in p for p in problems), problems


def test_invalid_yaml_is_reported_with_its_line(mappings):
    (mappings / "hub.yaml").write_text("systems:\n  crm: [adapter\n")
    problems = problems_of(mappings)
    assert len(problems) == 1 and f"{mappings / 'hub.yaml'}:3:1: (document): invalid YAML" in problems[0]


def test_duplicate_key_is_an_error(mappings):
    text = (mappings / "hub.yaml").read_text()
    (mappings / "hub.yaml").write_text(text.replace("roles:\n", "roles:\n  contact_registry: crm\n", 1))
    problems = problems_of(mappings)
    assert any("roles.contact_registry: duplicate key" in p for p in problems), problems


def test_unknown_roles_and_missing_required_roles_are_named(mappings):
    path = mappings / "hub.yaml"
    text = path.read_text()
    path.write_text(text.replace("  decision_engine: cm ", "  decision_boss: cm ", 1))
    problems = problems_of(mappings)
    assert any(":13:3: roles.decision_boss: unknown role 'decision_boss'" in p for p in problems), problems
    assert any("roles: no system plays decision_engine" in p for p in problems), problems


def test_reserved_system_names(mappings):
    path = mappings / "hub.yaml"
    path.write_text(path.read_text().replace("  crm:\n    adapter", "  hub:\n    adapter", 1))
    assert any("systems.hub: 'hub' is reserved" in p for p in problems_of(mappings))


def test_problems_carry_line_and_column(mappings):
    line = edit(mappings / "hub.yaml", "    mode: realtime\n", "    mode: hourly\n")
    (problem,) = [p for p in problems_of(mappings) if "flows[0].mode" in p]
    assert problem.startswith(f"{mappings / 'hub.yaml'}:{line}:5: flows[0].mode: ")


def test_a_role_played_by_a_system_without_the_port_points_at_the_role(mappings):
    path = mappings / "hub.yaml"
    path.write_text(path.read_text().replace("    adapter: builtin-crm\n", "    adapter: builtin-cm\n", 1))
    problems = problems_of(mappings)
    assert len(problems) == 2, problems
    assert ":12:3: roles.contact_registry: system 'crm' (builtin-cm) does not implement ContactRegistry" in problems[0]
    assert ":14:3: roles.request_registry: system 'crm' (builtin-cm) does not implement RequestRegistry" in problems[1]
