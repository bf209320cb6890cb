"""The `hub` command as a newcomer meets it: help, check, and `serve --demo` as a real process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hub.config import SHIPPED_MAPPINGS

HUB = str(Path(sys.executable).with_name("hub"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUB, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_help_lists_the_commands():
    out = run("--help")
    assert out.returncode == 0
    for command in ("serve", "check", "demo", "export-schema", "dlq", "flows"):
        assert command in out.stdout
    serve = run("serve", "--help")
    assert "--host" in serve.stdout and "--port" in serve.stdout and "--demo" in serve.stdout


def test_check_passes_on_shipped_mappings_and_names_file_line_field_when_broken(tmp_path):
    assert run("check").returncode == 0
    broken = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, broken)
    text = (broken / "hub.yaml").read_text()
    (broken / "hub.yaml").write_text(text.replace("    mode: realtime\n", "    mode: hourly\n", 1))
    out = run("check", env={"HUB_MAPPINGS_DIR": str(broken)})
    assert out.returncode == 2
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "mode: realtime" in row)
    assert f"{broken / 'hub.yaml'}:{line}:5: flows[0].mode:" in out.stderr, out.stderr


def test_serve_demo_runs_the_scenario(tmp_path):
    port = free_port()
    env = {**os.environ, "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
           "HUB_BROKER_URL": "memory://"}
    proc = subprocess.Popen([HUB, "serve", "--demo", "--port", str(port), "--log-level", "warning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "hub did not come up"
            time.sleep(0.1)
        query = '{ customerByKey(email: "anna.devries@example.com") { name segments { id } nextBestActions { offerId } } }'
        body = httpx.post(f"{url}/graphql", json={"query": query}, timeout=10).json()
        anna = body["data"]["customerByKey"]
        assert anna["name"] == "Anna de Vries" and anna["nextBestActions"]
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_serve_refuses_workers_on_the_embedded_defaults(tmp_path):
    env = {**os.environ, "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/hub.db", "HUB_BROKER_URL": "memory://"}
    done = subprocess.run([HUB, "serve", "--workers", "2"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert "--workers above 1 needs PostgreSQL" in done.stderr and "RabbitMQ" in done.stderr
