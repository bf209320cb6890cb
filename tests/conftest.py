"""Shared fixtures: real services when they run, a clear skip (or, under CI, a failure) when not."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest

RABBITMQ_URL = os.environ.get("HUB_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get("HUB_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
UNDER_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _reachable(url: str) -> bool:
    parsed = urlparse(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, url: str) -> None:
    """Skip with a reason on a laptop without the service; fail under CI, never skip."""
    if _reachable(url):
        return
    message = f"{name} is not reachable at {url}"
    if UNDER_CI:
        pytest.fail(f"{message} (CI=true: a missing service is a failure)")
    pytest.skip(f"{message}; start it to run this test")


@pytest.fixture
def rabbitmq_url() -> str:
    require_service("RabbitMQ", RABBITMQ_URL)
    return RABBITMQ_URL


@pytest.fixture
def bus_namespace() -> str:
    """A fresh exchange/queue prefix per test, so tests on one broker never see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty database per test on the real server, dropped afterwards."""
    require_service("PostgreSQL", POSTGRES_URL)
    import asyncpg

    admin_dsn = POSTGRES_URL.replace("postgresql+asyncpg", "postgresql")
    name = f"hubtest_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = POSTGRES_URL.rpartition("/")
    yield f"{base}/{name}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
