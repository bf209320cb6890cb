"""Where the files the hub ships with live, in a checkout and in an installed hub.

The repository keeps the shipped deployment in mappings/ (tests and docs name that folder); the wheel
installs the same folder as the package `hub_mappings` (pyproject.toml `package-dir`, as adapters/ is
`hub_adapters`), so an installed hub finds it next to its own code through the import system."""

from __future__ import annotations

import importlib.util
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MAPPINGS_PACKAGE = "hub_mappings"


def shipped_mappings() -> Path:
    """The shipped mappings: the installed `hub_mappings` package when there is one (a wheel, `pip install
    .`, an editable install), else the checkout's mappings/ folder (the source tree on sys.path)."""
    try:
        spec = importlib.util.find_spec(MAPPINGS_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if (Path(location) / "hub.yaml").is_file():
                return Path(location)
    return PROJECT_ROOT / "mappings"
