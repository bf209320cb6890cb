"""Fault-test fixtures: hubs on a fresh PostgreSQL database and a fresh RabbitMQ namespace, built
from settings the test controls (e.g. a broker URL through a TCP proxy), closed and their topology
deleted afterwards. Also helpers for hub subprocesses and for reading effects as a user would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.config import Settings
from hub.registry import load_mapping
from hub.runtime import Hub
from tests.bus.proxy import TcpProxy
from tests.support import CUSTOMER, gql, start_contact

HUB = str(Path(sys.executable).with_name("hub"))
OPERATIONS = "{ operations { outboxBacklog relayError queues { queue depth deadLetters } } }"


def fault_settings(database_url: str, broker_url: str, namespace: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        database_url=database_url,
        broker_url=broker_url,
        bus_namespace=namespace,
        retry_backoff_seconds=0.05,
        relay_idle_seconds=0.1,
        delivery_limit=3,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings_for(postgres_url, rabbitmq_url, bus_namespace) -> Callable[..., Settings]:
    """Settings on this test's database and namespace; `broker_url` may point at a proxy."""

    def make(broker_url: str | None = None, **overrides: Any) -> Settings:
        return fault_settings(postgres_url, broker_url or rabbitmq_url, bus_namespace, **overrides)

    return make


@pytest.fixture
async def topology(rabbitmq_url, bus_namespace, settings_for) -> AsyncIterator[None]:
    """Deletes the namespace's queues and exchanges after the test (whatever created them)."""
    yield
    from tests.support import delete_topology

    mapping, _ = load_mapping(settings_for().mappings_dir)
    await delete_topology(rabbitmq_url, bus_namespace, [f.queue for f in mapping.flows])


@pytest.fixture
async def start_hub(settings_for, topology) -> AsyncIterator[Callable[..., Awaitable[Hub]]]:
    """Start in-process hubs; every one still open is closed after the test."""
    made: list[Hub] = []

    async def start(settings: Settings | None = None, *, consume: bool = True, cls: type[Hub] = Hub) -> Hub:
        hub = cls(settings or settings_for())
        made.append(hub)
        await asyncio.wait_for(hub.start(consume=consume), 30)
        return hub

    yield start
    for hub in reversed(made):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(hub.close(), 15)


@pytest.fixture
async def proxy(rabbitmq_url) -> AsyncIterator[TcpProxy]:
    p = await TcpProxy.for_url(rabbitmq_url).start()
    try:
        yield p
    finally:
        await p.close()


@contextlib.asynccontextmanager
async def api(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """The hub's GraphQL API over ASGI, as a channel would call it."""
    from hub.api.app import create_app

    transport = httpx.ASGITransport(app=create_app(hub=hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test", timeout=30) as client:
        yield client


async def first_offer(client: httpx.AsyncClient, email: str) -> tuple[str, str, str]:
    """Start a contact for `email`; return (contact id, customer id, an offer to show)."""
    started = await start_contact(client, email=email)
    return started["contact"]["id"], started["customer"]["id"], started["nextBestActions"][0]["offerId"]


def shown_event(offer_id: str) -> dict[str, str]:
    return {"type": "PROPOSITION_SHOWN", "offerId": offer_id}


async def shown_counts(client: httpx.AsyncClient, customer_id: str) -> dict[str, int]:
    """offerId -> shown, from the customer's offerHistory through GraphQL."""
    data = await gql(client, CUSTOMER, {"id": customer_id})
    return {h["offerId"]: h["shown"] for h in data["customer"]["offerHistory"]}


# --- hub subprocesses ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hub_env(settings: Settings) -> dict[str, str]:
    """HUB_* environment for a `hub` subprocess on the same database, broker and namespace."""
    return {
        **os.environ,
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_BROKER_URL": settings.broker_url,
        "HUB_BUS_NAMESPACE": settings.bus_namespace,
        "HUB_RELAY_IDLE_SECONDS": str(settings.relay_idle_seconds),
        "HUB_RETRY_BACKOFF_SECONDS": str(settings.retry_backoff_seconds),
        "HUB_DELIVERY_LIMIT": str(settings.delivery_limit),
    }


def run_hub(settings: Settings, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run one `hub` command (e.g. `dlq list`) as a user would, on the test's stack."""
    return subprocess.run(
        [HUB, *args], capture_output=True, text=True, timeout=timeout, env=hub_env(settings)
    )


class HubProcess:
    """`hub serve` as a real process; `url` is its base URL once `wait_ready` returned."""

    def __init__(self, settings: Settings, log_path: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            [HUB, "serve", "--port", str(self.port), "--log-level", "warning", *args],
            env=hub_env(settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    async def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1) as client:
            while True:
                assert self.proc.poll() is None, f"hub exited early:\n{self.output()}"
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                assert time.monotonic() < deadline, f"hub did not come up:\n{self.output()}"
                await asyncio.sleep(0.1)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no ack."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def hub_process(tmp_path, topology) -> Any:
    """Start `hub serve` subprocesses; every one is stopped after the test."""
    made: list[HubProcess] = []

    def start(settings: Settings, *args: str) -> HubProcess:
        process = HubProcess(settings, tmp_path / f"hub-{len(made)}.log", *args)
        made.append(process)
        return process

    yield start
    for process in made:
        process.stop()
