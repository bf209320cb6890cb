"""Install and run as users do: the wheel built from this checkout, installed into a fresh venv (its
dependencies from PyPI), run from a folder outside the checkout. Nothing of the source tree is on the
path there, so every file the hub reads at run time (the shipped mappings, CM's catalog, the demo data,
migrations, templates) must come out of the wheel."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the wheel is built from (as the Dockerfile copies it): the source tree, without local state.
SOURCES = ["pyproject.toml", "README.md", "hub", "adapters", "mappings"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


class Installed:
    def __init__(self, venv_dir: Path, workdir: Path, wheel: Path):
        self.venv = venv_dir
        self.bin = venv_dir / "bin"
        self.workdir = workdir
        self.wheel = wheel

    def env(self, **extra: str) -> dict[str, str]:
        # The user's environment: no HUB_* of the test run, no PYTHONPATH into the checkout.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return {**env, **extra}

    def run(self, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "hub"), *args],
            cwd=self.workdir,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def python(self, code: str) -> str:
        out = subprocess.run(
            [str(self.bin / "python"), "-c", code],
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout.strip()


def _build_wheel(into: Path) -> Path:
    source = into / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, source / name)
    dist = into / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = dist.glob("markiting_hub-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("install")
    wheel = _build_wheel(base)
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         str(wheel)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    workdir = base / "elsewhere"
    workdir.mkdir()
    yield Installed(env_dir, workdir, wheel)


def test_the_wheel_carries_the_shipped_mappings(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    shipped = [p.relative_to(ROOT / "mappings") for p in (ROOT / "mappings").rglob("*") if p.is_file()
               and "__pycache__" not in p.parts]
    assert shipped
    missing = sorted(str(p) for p in shipped if f"hub_mappings/{p.as_posix()}" not in names)
    assert missing == []


def test_installed_hub_finds_its_mappings_in_site_packages(installed):
    where = Path(installed.python("from hub.config import Settings; print(Settings().mappings_dir)"))
    assert installed.venv in where.parents, where  # the installed copy, not the checkout's
    assert ROOT not in where.parents
    assert (where / "hub.yaml").is_file() and (where / "demo" / "customers.yaml").is_file()
    # The hub's own code is the installed one too.
    code = Path(installed.python("import hub; print(hub.__file__)"))
    assert installed.venv in code.parents


def test_help_and_the_mapping_commands_run_installed(installed):
    helped = installed.run("--help")
    assert helped.returncode == 0, helped.stderr
    for command in ("serve", "mappings", "dlq", "flows", "schema"):
        assert command in helped.stdout
    validated = installed.run("mappings", "validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    checked = installed.run("check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = installed.run("mappings", "test")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "0 failing" in tested.stdout and " ok," in tested.stdout


def test_adapter_template_ships(installed, tmp_path):
    made = installed.run("adapters", "new", "loyalty", "--dir", str(tmp_path / "made"))
    assert made.returncode == 0, made.stdout + made.stderr
    assert list((tmp_path / "made").rglob("*.py"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_demo_answers_healthz_and_a_customer_query(installed):
    port = _free_port()
    proc = subprocess.Popen(
        [str(installed.bin / "hub"), "serve", "--demo", "--port", str(port), "--log-level", "warning"],
        cwd=installed.workdir,
        env=installed.env(HUB_DATABASE_URL=f"sqlite+aiosqlite:///{installed.workdir}/var/hub.db"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        health = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"hub serve exited {proc.returncode}:\n{proc.stdout.read() if proc.stdout else ''}")
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert health is not None and health.status_code == 200, health
        assert health.json()["ok"] is True
        query = '{ customerByKey(email: "anna.devries@example.com") { id name emails } }'
        answer = httpx.post(f"{base}/graphql", json={"query": query}, timeout=10)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert "errors" not in body, body
        customer = body["data"]["customerByKey"]
        assert customer["name"] == "Anna de Vries"
        assert customer["emails"] == ["anna.devries@example.com"]
        # The web pages' files come out of the wheel too: GraphiQL's assets and the operations page's.
        for page, prefix in (("/graphql", "/graphql/assets/"), ("/ops", "/ops/static/")):
            html = httpx.get(f"{base}{page}", headers={"accept": "text/html"}, timeout=10)
            assert html.status_code == 200 and "text/html" in html.headers["content-type"], (page, html.text)
            assets = sorted(set(re.findall(rf'"({re.escape(prefix)}[^"?#]+)', html.text)))
            assert assets, f"{page} names no asset under {prefix}"
            for asset in assets:
                got = httpx.get(f"{base}{asset}", timeout=10)
                assert got.status_code == 200 and got.content, asset
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_schema_commands_run_installed(installed):
    exported = installed.run("schema", "export", "--output", "-")
    assert exported.returncode == 0, exported.stderr
    assert "type Query {" in exported.stdout
    published = installed.workdir / "published.graphql"
    published.write_text(exported.stdout, encoding="utf-8")
    diffed = installed.run("schema", "diff", "--published", str(published))
    assert diffed.returncode == 0, diffed.stdout + diffed.stderr
    assert "0 breaking" in diffed.stdout
