"""`hub mappings validate` and `hub mappings test` as an architect runs them."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from hub.config import PROJECT_ROOT, SHIPPED_MAPPINGS
from tests.e2e.test_cli import HUB, run


@pytest.fixture
def mappings(tmp_path):
    target = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, target)
    return target


def test_shipped_mappings_validate_and_their_tests_pass():
    out = run("mappings", "validate", str(SHIPPED_MAPPINGS))
    assert out.returncode == 0, out.stderr
    assert "ok: 7 systems, 7 flows" in out.stdout
    tests = run("mappings", "test", str(SHIPPED_MAPPINGS))
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "0 failing" in tests.stdout


def test_validate_lists_every_problem_with_file_line_column_and_exits_non_zero(mappings):
    hub_yaml = mappings / "hub.yaml"
    text = hub_yaml.read_text()
    text = text.replace("      emails: emails\n", "      emials: emails\n").replace("mode: realtime", "mode: hourly", 1)
    hub_yaml.write_text(text)
    out = run("mappings", "validate", str(mappings))
    assert out.returncode == 2
    lines = text.splitlines()
    mode_line = next(i for i, row in enumerate(lines, 1) if "mode: hourly" in row)
    assert f"{hub_yaml}:{mode_line}:5: flows[0].mode:" in out.stderr, out.stderr
    # hub check is the same command
    assert run("check", env={"HUB_MAPPINGS_DIR": str(mappings)}).returncode == 2


def test_validate_reports_cross_references_and_the_files_adapters_read(mappings):
    hub_yaml = mappings / "hub.yaml"
    hub_yaml.write_text(hub_yaml.read_text().replace("      emails: emails\n", "      emials: emails\n"))
    out = run("mappings", "validate", str(mappings))
    line = next(i for i, row in enumerate(hub_yaml.read_text().splitlines(), 1) if "emials" in row)
    assert out.returncode == 2
    assert f"{hub_yaml}:{line}:7: systems.crm.profile.emials: unknown unified field 'emials'" in out.stderr

    shutil.copy(SHIPPED_MAPPINGS / "hub.yaml", hub_yaml)
    offers = mappings / "cm" / "offers.yaml"
    offers.write_text(offers.read_text().replace("    priority: 3", "    priorty: 3", 1))
    out = run("mappings", "validate", str(mappings))
    assert out.returncode == 2
    assert f"{offers}:" in out.stderr and "priorty" in out.stderr, out.stderr


def test_a_failing_mapping_test_names_test_file_line_and_shows_the_difference(mappings):
    tests = mappings / "tests" / "view.yaml"
    tests.write_text(tests.read_text().replace("      attributes.tier: gold\n", "      attributes.tier: platinum\n"))
    out = run("mappings", "test", str(mappings))
    assert out.returncode == 1
    assert f"FAIL the CRM's master data ({tests}:4)" in out.stdout
    assert "attributes.tier: expected 'platinum', got 'gold'" in out.stdout
    assert "3 ok, 1 failing" in out.stdout


def test_mapping_tests_that_name_unknown_systems_are_errors_with_lines(mappings):
    tests = mappings / "tests" / "view.yaml"
    tests.write_text(tests.read_text().replace("    system: crm\n", "    system: crmm\n", 1))
    out = run("mappings", "test", str(mappings))
    assert out.returncode == 2
    assert f"{tests}:5:5: tests[0].system: no system named 'crmm'" in out.stderr, out.stderr


def test_a_folder_without_mapping_tests_fails_the_command(mappings):
    shutil.rmtree(mappings / "tests")
    out = run("mappings", "test", str(mappings))
    assert out.returncode == 1 and "no mapping tests found" in out.stderr


def test_hub_serve_refuses_a_mapping_whose_variables_are_unset_and_names_them(tmp_path):
    example = PROJECT_ROOT / "mappings" / "examples" / "rest"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(HUB_MAPPINGS_DIR=str(example), HUB_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    out = subprocess.run([HUB, "serve", "--port", "1"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2
    assert f"{example / 'hub.yaml'}:" in out.stderr and "environment variable LOYALTY_URL is not set" in out.stderr
