"""mappings/examples/rest is a working example: `hub mappings validate` accepts it and `hub mappings
test` passes, as a user runs them (subprocesses of the installed `hub` command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hub.config import PROJECT_ROOT

HUB = str(Path(sys.executable).with_name("hub"))
EXAMPLE = PROJECT_ROOT / "mappings" / "examples" / "rest"
ENV = {
    "LOYALTY_URL": "https://loyalty.example.com/api/v2",
    "LOYALTY_TOKEN_URL": "https://auth.example.com/oauth2/token",
    "LOYALTY_CLIENT_SECRET": "example-Secret-31c",
}


def hub(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUB, *args], capture_output=True, text=True, timeout=60, env=env)


def test_the_example_validates_and_its_mapping_tests_pass():
    env = {**os.environ, **ENV}
    validated = hub("mappings", "validate", str(EXAMPLE), env=env)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "3 systems" in validated.stdout
    tested = hub("mappings", "test", str(EXAMPLE), env=env)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "FAIL" not in tested.stdout


def test_the_example_names_each_missing_variable_with_file_and_line():
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    linted = hub("mappings", "validate", str(EXAMPLE), env=env)  # a lint without the secrets: warnings
    assert linted.returncode == 0 and linted.stderr.count("warning: ") == len(ENV), linted.stderr
    out = hub("mappings", "validate", "--strict-env", str(EXAMPLE), env=env)
    assert out.returncode == 2
    for name in ENV:
        assert f"environment variable {name} is not set" in out.stderr
    assert f"{EXAMPLE / 'hub.yaml'}:" in out.stderr
