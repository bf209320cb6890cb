"""`hub adapters new`: names, refusals, and a generated package that passes the kit out of the box."""

from __future__ import annotations

import re

import pytest

from hub.cli.scaffold import Names, ScaffoldError, render, scaffold
from tests.kit.cli import BIN, hub, run


def test_names_derive_from_the_entry_point():
    n = Names.of("demo-loyalty")
    assert (n.entry_point, n.distribution, n.module, n.cls, n.env_prefix, n.title) == (
        "demo-loyalty", "demo-loyalty-adapter", "demo_loyalty_adapter", "DemoLoyaltyAdapter", "DEMO_LOYALTY",
        "Demo Loyalty")
    assert Names.of("acme-adapter").distribution == "acme-adapter"
    assert Names.of("acme-adapter").cls == "AcmeAdapter"


@pytest.mark.parametrize("bad", ["Loyalty", "loyalty_", "2fa", "a--b", "-a", "a-", "ü", ""])
def test_bad_names_are_refused(bad):
    with pytest.raises(ScaffoldError):
        Names.of(bad)


def test_env_placeholders_survive_rendering():
    assert render("api_key: ${{{env_prefix}}_API_KEY}", Names.of("x-y")) == "api_key: ${X_Y_API_KEY}"
    with pytest.raises(ScaffoldError, match="unknown"):
        render("{{nope}}", Names.of("x"))


def test_every_placeholder_is_filled_and_a_full_folder_is_refused(tmp_path):
    written = scaffold("acme", tmp_path / "out")
    assert {p.relative_to(tmp_path / "out").as_posix() for p in written} == {
        "README.md", "pyproject.toml", "src/acme_adapter/__init__.py", "src/acme_adapter/adapter.py",
        "tests/conftest.py", "tests/test_kit.py"}
    for path in written:
        assert not re.search(r"\{\{\w+\}\}", path.read_text()), path
    with pytest.raises(ScaffoldError, match="not an empty folder"):
        scaffold("acme", tmp_path / "out")


def test_cli_refuses_bad_names_and_installed_ones(tmp_path):
    out = hub("adapters", "new", "Bad_Name", "--dir", str(tmp_path / "a"))
    assert out.returncode == 2 and "is not an adapter name" in out.stderr
    out = hub("adapters", "new", "builtin-cm", "--dir", str(tmp_path / "b"))
    assert out.returncode == 2 and "installed already" in out.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_new_adapter_passes_the_kit_out_of_the_box(tmp_path):
    target = tmp_path / "demo-loyalty-adapter"
    made = hub("adapters", "new", "demo-loyalty", "--dir", str(target))
    assert made.returncode == 0, made.stderr
    assert (target / "pyproject.toml").exists()
    lint = run(str(BIN / "ruff"), "check", ".", cwd=target)
    assert lint.returncode == 0, lint.stdout
    try:
        installed = run(str(BIN / "pip"), "install", "-q", "--no-deps", "-e", str(target), timeout=300)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        listed = hub("adapters", "list")
        assert "demo-loyalty\tdemo-loyalty-adapter\tdemo_loyalty_adapter:DemoLoyaltyAdapter\t" \
               "ProfileSource, EventConsumer" in listed.stdout, listed.stdout
        tests = run(str(BIN / "pytest"), "-q", "-rs", "-p", "no:cacheprovider", cwd=target, timeout=300)
        summary = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else ""
        assert tests.returncode == 0, tests.stdout + tests.stderr
        # Three skips: the kit's request-registry and privacy checks (ports the generated adapter does not
        # declare) and its reports check (no optional report port); every other kit test runs on the
        # ports it declares.
        assert re.fullmatch(r"\d+ passed, 3 skipped in [\d.]+s", summary), summary
        assert "does not declare RequestRegistry" in tests.stdout, tests.stdout
        assert "does not declare PrivacyHandler" in tests.stdout, tests.stdout
        assert "has no report port" in tests.stdout, tests.stdout
    finally:
        run(str(BIN / "pip"), "uninstall", "-y", "-q", "demo-loyalty-adapter")
