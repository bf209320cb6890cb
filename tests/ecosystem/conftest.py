"""The hub served for real (uvicorn on a free port, authentication on) to the GraphQL ecosystem's own
tools, run with Node from tests/node: graphql-http's server audit, the graphql-ws reference client and
Apollo's composition library. Node's packages come from tests/node/package-lock.json (`npm ci`, once,
when node_modules does not match the lock file); without node and npm these tests skip with the reason,
and under CI they fail."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.security.scopes import ALL_SCOPES
from tests.conftest import UNDER_CI
from tests.support import serving

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
STAMP = NODE_DIR / "node_modules" / ".hub-stamp"  # the lock file's hash, as the Makefile writes it too


def lock_hash() -> str:
    return hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()


def node_modules_current() -> bool:
    return STAMP.is_file() and STAMP.read_text().strip() == lock_hash()


@pytest.fixture(scope="session")
def node_tools() -> Path:
    """tests/node with its packages installed (`npm ci`, when they do not match the lock file)."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        message = f"{' and '.join(missing)} not found: the GraphQL ecosystem tests run Node tools"
        if UNDER_CI:
            pytest.fail(f"{message} (CI=true: a missing tool is a failure)")
        pytest.skip(f"{message}; install Node 18+ to run them")
    if not node_modules_current():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"npm ci in {NODE_DIR} failed:\n{done.stderr[-3000:]}"
        STAMP.write_text(lock_hash())
    return NODE_DIR


async def node(script: str, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
    """Run tests/node/<script> to its end; its stdout (a failure shows stderr)."""
    process = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / script), *args, cwd=NODE_DIR,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"node {script} failed ({process.returncode}):\n{err.decode()[-3000:]}"
    return out.decode()


@pytest.fixture
def hub_settings(database_url, broker_url, bus_namespace):
    from hub.config import Settings

    return Settings(
        database_url=database_url, broker_url=broker_url, bus_namespace=bus_namespace,
        retry_backoff_seconds=0.05, relay_idle_seconds=0.1, delivery_limit=3, auth="required",
    )


@dataclass
class Served:
    """The hub on a real port: its address, its app, and a key with every scope."""

    address: str
    app: Any
    key: str

    @property
    def url(self) -> str:
        return f"http://{self.address}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.address}/graphql"

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        token = self.key if key is None else key
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=f"http://{self.address}", headers=headers, timeout=30)


@pytest.fixture
async def served(hub) -> AsyncIterator[Served]:
    from hub.api.app import create_app

    app = create_app(hub=hub)
    key = await hub.security.authn.keys.create("ecosystem", ",".join(sorted(ALL_SCOPES)))
    async with serving(app) as address:
        yield Served(address, app, key)


@pytest.fixture
def new_key(hub):
    made = iter(range(1, 10_000))

    async def make(scopes: str) -> str:
        return await hub.security.authn.keys.create(f"eco-{next(made)}", scopes)

    return make
