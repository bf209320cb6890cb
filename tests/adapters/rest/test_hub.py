"""A REST system connected to a running hub by YAML alone: its fields arrive in the unified view with
lineage, its events are delivered, and when it is slow or down the view is partial, bounded in time,
and - with the breaker open - answered without asking the system at all."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

import httpx
import pytest
import yaml

from hub.api.app import create_app
from hub.config import SHIPPED_MAPPINGS, Settings
from hub.runtime import Hub
from tests.adapters.rest.server import FakeSystem, serve
from tests.support import codes, eventually, gql, start_contact

TOKEN = "loyalty-Token-5b9e"
TIMEOUT = 0.5

QUERY = """query($id: ID!) { customer(id: $id) {
  name phones attributes sources { field system fetchedAt } unavailableSystems } }"""
TWO = """query($a: ID!, $b: ID!) { a: customer(id: $a) { attributes } b: customer(id: $b) { attributes } }"""

LOYALTY = {
    "adapter": "rest",
    "key": "email",
    "timeout_seconds": TIMEOUT,
    "profile": {
        "name": {"template": "{firstName} {lastName}", "transform": ["trim"]},
        "phones": {"path": "mobile", "transform": [{"e164": "NL"}]},
        "attributes.loyaltyTier": {"path": "tier", "transform": [{"lookup": {"G": "gold", "S": "silver"}}]},
        "attributes.loyaltyPoints": {"path": "points", "transform": ["number"]},
    },
    "config": {
        "auth": {"kind": "bearer", "token": "${LOYALTY_TOKEN}"},
        "fetch": {
            "key_match": "ignore_case",
            "batch": {"path": "/members?ids={keys}", "records": "items", "key_field": "email"},
        },
        "events": {"path": "/events"},
        "health_path": "/health",
        "retry": {"attempts": 1},
        "breaker": {"failures": 2, "cooldown_seconds": 60},
    },
}


def write_mapping(tmp_path, base_url: str):
    """The shipped mappings plus a `loyalty` system (and a flow of customer events to it)."""
    folder = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, folder)
    hub_yaml = folder / "hub.yaml"
    mapping = yaml.safe_load(hub_yaml.read_text())
    loyalty = {**LOYALTY, "config": {**LOYALTY["config"], "base_url": base_url}}
    mapping["systems"]["loyalty"] = loyalty
    mapping.setdefault("flows", []).append(
        {"name": "customers-to-loyalty", "source": "hub", "destination": "loyalty", "events": ["customer.*"]}
    )
    hub_yaml.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return folder


@pytest.fixture
async def loyalty() -> AsyncIterator[tuple[FakeSystem, str]]:
    system = FakeSystem(auth=("bearer", TOKEN))
    async with serve(system) as url:
        yield system, url


@pytest.fixture
async def wired(loyalty, tmp_path, monkeypatch):
    system, url = loyalty
    monkeypatch.setenv("LOYALTY_TOKEN", TOKEN)
    settings = Settings(
        mappings_dir=write_mapping(tmp_path, url), database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        broker_url="memory://", retry_backoff_seconds=0.05, relay_idle_seconds=0.1,
    )
    hub = Hub(settings)
    await hub.start()
    transport = httpx.ASGITransport(app=create_app(hub=hub))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            yield hub, client, system
    finally:
        await hub.close()


async def test_a_rest_system_connected_by_yaml_alone(wired):
    hub, client, system = wired
    system.add("Anna.Devries@Example.com", firstName="Anna", lastName=" de Vries ", mobile="06 1234 5678",
               tier="G", points="1250")
    system.add("bo@example.com", firstName="Bo", tier="S", points="10")
    anna = (await start_contact(client, email="anna.devries@example.com"))["customer"]["id"]
    bo = (await start_contact(client, email="bo@example.com"))["customer"]["id"]

    customer = (await gql(client, QUERY, {"id": anna}))["customer"]
    assert customer["name"] == "Anna de Vries"
    assert customer["phones"] == ["+31612345678"]
    assert customer["attributes"]["loyaltyTier"] == "gold"
    assert customer["attributes"]["loyaltyPoints"] == 1250
    lineage = {s["field"]: s["system"] for s in customer["sources"]}
    assert {lineage[f] for f in ("name", "phones", "attributes.loyaltyTier", "attributes.loyaltyPoints")} == {"loyalty"}
    assert all(s["fetchedAt"] for s in customer["sources"])
    assert customer["unavailableSystems"] == []

    # Two customers in one query: one batched request to the system, with both keys.
    hub.cache.clear()
    before = len(system.requests("/members"))
    data = await gql(client, TWO, {"a": anna, "b": bo})
    assert data["b"]["attributes"]["loyaltyTier"] == "silver"
    (batch,) = system.requests("/members")[before:]
    assert sorted(parse_qs(batch.query)["ids"][0].split(",")) == ["anna.devries@example.com", "bo@example.com"]
    assert batch.headers["authorization"] == f"Bearer {TOKEN}"

    # The hub's customer events reach the system through the flow, once each, keyed by event id.
    await hub.settle()
    created = [e for e in system.events.values() if e["type"] == "customer.created"]
    assert {e["subject"] for e in created} == {anna, bo}
    assert all(key == e["id"] for key, e in system.events.items())


async def test_a_slow_or_failing_system_gives_partial_data_and_the_breaker_answers_at_once(wired):
    hub, client, system = wired
    system.add("cy@example.com", firstName="Cy", tier="G", points="5")
    cy = (await start_contact(client, email="cy@example.com", cookieId="ck-cy"))["customer"]["id"]
    await hub.settle()

    # Slow: the view waits no longer than the system's timeout, and says so.
    system.delay = 5
    hub.cache.clear()
    started = time.monotonic()
    body = await gql(client, QUERY, {"id": cy}, ok=False)
    elapsed = time.monotonic() - started
    customer = body["data"]["customer"]
    assert customer["unavailableSystems"] == ["loyalty"]
    assert "loyaltyTier" not in customer["attributes"]
    assert {s["system"] for s in customer["sources"]} <= {"crm", "cm", "hub"}
    (error,) = [e for e in body["errors"] if e["extensions"].get("system") == "loyalty"]
    assert codes({"errors": [error]}) == ["SYSTEM_UNAVAILABLE"]
    assert f"no answer within {TIMEOUT:g}s" in error["message"]
    assert elapsed < TIMEOUT + 2.0, "the view's latency is bounded by the system's timeout"

    # Failing: each read fails until the breaker has seen enough consecutive failures and opens.
    system.delay, system.fail_always = 0, 503
    for _ in range(3):
        hub.cache.clear()
        body = await gql(client, QUERY, {"id": cy}, ok=False)
        assert body["data"]["customer"]["unavailableSystems"] == ["loyalty"]
        if "circuit open" in body["errors"][0]["message"]:
            break
    else:
        raise AssertionError(f"the breaker did not open: {body['errors']}")

    # Open: the answer comes without a request to the system.
    asked = len(system.requests("/members"))
    hub.cache.clear()
    body = await gql(client, QUERY, {"id": cy}, ok=False)
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "SYSTEM_UNAVAILABLE", "system": "loyalty"}
    assert "circuit open after" in error["message"]
    assert len(system.requests("/members")) == asked
    assert body["data"]["customer"]["unavailableSystems"] == ["loyalty"]
    assert TOKEN not in str(body)


async def test_a_destination_that_takes_its_time_blocks_no_write_of_the_hub(loyalty, tmp_path, monkeypatch):
    """The hub holds no store transaction while an external system answers an event: on SQLite (one
    writer) a slow destination would otherwise stall every contact until it answered."""
    system, url = loyalty
    monkeypatch.setenv("LOYALTY_TOKEN", TOKEN)
    folder = write_mapping(tmp_path, url)
    hub_yaml = folder / "hub.yaml"
    mapping = yaml.safe_load(hub_yaml.read_text())
    mapping["systems"]["loyalty"]["timeout_seconds"] = 30  # the event may take its time
    hub_yaml.write_text(yaml.safe_dump(mapping, sort_keys=False))
    hub = Hub(Settings(mappings_dir=folder, database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
                       broker_url="memory://", relay_idle_seconds=0.1))
    await hub.start()
    system.event_gate = asyncio.Event()
    try:
        transport = httpx.ASGITransport(app=create_app(hub=hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            first = (await start_contact(client, email="first@example.com"))["customer"]["id"]
            await eventually(lambda: system.events_waiting == 1, timeout=10)  # customer.created in flight
            # While the system holds that event, the hub keeps writing: contacts start and end.
            second = await asyncio.wait_for(start_contact(client, email="second@example.com"), 5)
            assert second["created"] and system.events_waiting == 1
            system.event_gate.set()
            await hub.settle(timeout=10)
            assert {e["subject"] for e in system.events.values()} == {first, second["customer"]["id"]}
    finally:
        system.event_gate.set()
        await hub.close()
