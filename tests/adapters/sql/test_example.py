"""mappings/examples/sql works as its README says: the CLI validates it and runs its mapping tests, and
with the seeded database every system answers its health check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "mappings" / "examples" / "sql"
HUB = Path(sys.executable).parent / "hub"


def hub_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k != "SHOP_DB_URL"}
    return subprocess.run(
        [str(HUB), *args], cwd=PROJECT_ROOT, env={**environ, **env}, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def shop_db(tmp_path) -> Path:
    path = tmp_path / "shop.db"
    seeded = subprocess.run(
        [sys.executable, str(EXAMPLE / "seed.py"), str(path)], capture_output=True, text=True, timeout=60
    )
    assert seeded.returncode == 0, seeded.stderr
    return path


def test_the_example_validates_and_its_mapping_tests_pass(shop_db):
    url = f"sqlite+aiosqlite:///{shop_db}"
    validated = hub_cli("mappings", "validate", "mappings/examples/sql", SHOP_DB_URL=url)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "ok: 3 systems" in validated.stdout
    tested = hub_cli("mappings", "test", "mappings/examples/sql", SHOP_DB_URL=url)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "FAIL" not in tested.stdout


def test_without_the_url_validation_names_the_variable_and_its_line():
    line = next(
        i for i, text in enumerate((EXAMPLE / "hub.yaml").read_text().splitlines(), 1) if "${SHOP_DB_URL}" in text
    )
    # A lint where the deployment's secrets are not: a warning, the rest checked, exit 0.
    linted = hub_cli("mappings", "validate", "mappings/examples/sql")
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert f"warning: mappings/examples/sql/hub.yaml:{line}:" in linted.stderr
    assert "environment variable SHOP_DB_URL is not set" in linted.stderr
    # As hub serve sees it: a problem.
    validated = hub_cli("mappings", "validate", "--strict-env", "mappings/examples/sql")
    assert validated.returncode == 2
    assert f"mappings/examples/sql/hub.yaml:{line}:" in validated.stderr
    assert "environment variable SHOP_DB_URL is not set" in validated.stderr


def test_with_the_seeded_database_every_system_is_up(shop_db, tmp_path):
    checked = hub_cli(
        "adapters", "check",
        SHOP_DB_URL=f"sqlite+aiosqlite:///{shop_db}",
        HUB_MAPPINGS_DIR=str(EXAMPLE),
        HUB_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    shop = next(line for line in checked.stdout.splitlines() if "shop" in line)
    assert shop.startswith("up") and "reads query" in shop
