"""Security across hub processes (`hub serve` twice on one PostgreSQL + RabbitMQ): a key revoked with the
CLI stops working at once in both; the rate limit holds for the sum of both."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.faults.conftest import run_hub

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]
QUERY = {"query": "{ offers { id } }"}


@pytest.fixture
def two_hubs(settings_for, hub_process, monkeypatch):
    async def start(**env: str):
        monkeypatch.setenv("HUB_AUTH", "required")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = settings_for()
        first = hub_process(settings)
        await first.wait_ready()
        second = hub_process(settings)
        await second.wait_ready()
        return settings, first, second

    return start


def create_key(settings, name: str) -> str:
    done = run_hub(settings, "keys", "create", name, "--scopes", "customer:read")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


async def test_a_revoked_key_stops_at_once_in_every_process(two_hubs):
    settings, first, second = await two_hubs()
    token = create_key(settings, "channel-x")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as client:
        for hub in (first, second):
            assert (await client.post(f"{hub.url}/graphql", json=QUERY)).status_code == 200
        revoked = run_hub(settings, "keys", "revoke", "channel-x")
        assert revoked.returncode == 0, revoked.stderr
        # At once: the very next request to either process, no waiting.
        for hub in (first, second):
            response = await client.post(f"{hub.url}/graphql", json=QUERY)
            assert response.status_code == 401, (hub.url, response.text)


async def test_the_rate_limit_holds_across_processes(two_hubs):
    settings, first, second = await two_hubs(HUB_RATE_LIMIT="5")
    token = create_key(settings, "busy")
    await asyncio.sleep(4.5)  # both heartbeats seen by both (every 2 s): each holds half the rate
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        began = time.monotonic()
        statuses = []
        for n in range(40):
            hub = (first, second)[n % 2]
            statuses.append((await client.post(f"{hub.url}/graphql", json=QUERY)).status_code)
        elapsed = time.monotonic() - began
    accepted = statuses.count(200)
    # One burst (2 x 5) for both together plus the refill while the calls ran; two processes each
    # giving the full burst would let 20 + through.
    assert accepted <= 10 + 5 * elapsed + 1, (accepted, elapsed)
    assert set(statuses) <= {200, 429} and accepted >= 8
