"""Running `hub` (and the venv's tools) as subprocesses, as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
HUB = str(BIN / "hub")


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, **(env or {})})


def hub(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run(HUB, *args, env=env)


def register(site: Path, distribution: str, entry_points: dict[str, str]) -> None:
    """Make `entry_points` (name -> module:Class) installed for processes with `site` on PYTHONPATH:
    importlib.metadata finds a dist-info folder on sys.path, no pip involved (the venv is shared)."""
    dist = site / f"{distribution.replace('-', '_')}-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.0.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (dist / "entry_points.txt").write_text(f"[markiting_hub.adapters]\n{lines}")
