"""A non-editable install (the Docker image's `pip install .`) carries every package and the files
Alembic reads: the hub's migrations and each adapter's own."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def package_dirs() -> set[str]:
    found = set()
    for top, name in (("hub", "hub"), ("adapters", "hub_adapters")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    return found


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert package_dirs() - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - package_dirs() == set(), "these are listed but have no __init__.py"


@pytest.mark.slow
def test_the_wheel_holds_the_packages_and_every_migration(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("markiting_hub-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in package_dirs():
        assert f"{package.replace('.', '/')}/__init__.py" in names, package
    migrations = [p.relative_to(ROOT) for top in ("hub", "adapters") for p in (ROOT / top).glob("**/migrations/**/*.py")]
    assert migrations
    for path in migrations:
        installed = str(path).replace("adapters/", "hub_adapters/", 1) if path.parts[0] == "adapters" else str(path)
        assert installed in names, installed
    assert "hub/store/migrations/script.py.mako" in names
    templates = [p.relative_to(ROOT) for p in (ROOT / "hub/cli/templates").rglob("*.tmpl")]
    assert templates and all(str(t) in names for t in templates)  # `hub adapters new` works installed
