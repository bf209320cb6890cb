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
# Folders of files, not code, installed as packages of their own (pyproject.toml package-dir): no
# __init__.py, found by the hub through the import system (hub.config.shipped).
DATA_PACKAGES = {"hub_mappings": "mappings"}


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
    assert listed - package_dirs() - set(DATA_PACKAGES) == set(), "these are listed but have no __init__.py"


def test_data_packages_map_to_their_folders():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, folder in DATA_PACKAGES.items():
        assert setuptools["package-dir"][package] == folder
        assert package in setuptools["packages"] and setuptools["package-data"][package]
        assert (ROOT / folder / "hub.yaml").is_file()


def test_the_default_mappings_dir_is_the_shipped_one():
    from hub.config import SHIPPED_MAPPINGS, Settings
    from hub.config.shipped import shipped_mappings

    # In a checkout (editable or not installed): the repository's mappings/, which tests and docs name.
    assert shipped_mappings().resolve() == (ROOT / "mappings").resolve() == SHIPPED_MAPPINGS.resolve()
    assert Settings.model_fields["mappings_dir"].default == SHIPPED_MAPPINGS


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
    # Every file the web pages serve (GraphiQL's assets, the /ops page's), whatever its type.
    served = [p.relative_to(ROOT) for folder in ("hub/api/static", "hub/api/ops/static", "hub/api/ops/templates")
              for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert [str(p) for p in served if str(p) not in names] == []
    # The shipped mappings, the demo data and CM's catalog, as hub_mappings.
    shipped = [p.relative_to(ROOT / "mappings") for p in (ROOT / "mappings").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts]
    assert {"hub.yaml", "demo/customers.yaml", "cm/offers.yaml"} <= {p.as_posix() for p in shipped}
    assert [str(p) for p in shipped if f"hub_mappings/{p.as_posix()}" not in names] == []
