"""Mapping hot reload: a valid mapping replaces the old one at once, an invalid one is rejected and the
old one keeps serving, requests in flight finish on the mapping they started with."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time

import httpx
import pytest

from hub.api.app import create_app
from hub.config import SHIPPED_MAPPINGS, Settings
from hub.config.watch import MappingWatcher
from hub.runtime import Hub
from tests.e2e.test_cli import HUB, free_port
from tests.support import START, eventually, gql

NAME_AS_IS = "      name: name\n"
NAME_TAGGED = '      name: {template: "{name} (via CRM)"}\n'
QUERY = 'query($id: ID!) { customer(id: $id) { name sources { field system } } }'


@pytest.fixture
def mappings(tmp_path):
    target = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, target)
    return target


@pytest.fixture
async def reloadable(tmp_path, mappings):
    hub = Hub(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", mappings_dir=mappings,
                       reload_grace_seconds=0.5))
    await hub.start()
    transport = httpx.ASGITransport(app=create_app(hub=hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield hub, client
    await hub.close()


async def start_contact(client, email: str, name: str) -> dict:
    data = await gql(client, START, {"input": {"channel": "WEBSITE", "name": name, "identification": {"email": email}}})
    return data["startContact"]


def rewrite(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


async def test_a_valid_mapping_replaces_the_old_one(reloadable, mappings):
    hub, client = reloadable
    started = await start_contact(client, email="ann@example.com", name="Ann")
    cid = started["customer"]["id"]
    assert (await gql(client, QUERY, {"id": cid}))["customer"]["name"] == "Ann"
    rewrite(mappings / "hub.yaml", NAME_AS_IS, NAME_TAGGED)
    assert await hub.reload() is True
    assert hub.wiring.version == 2
    assert (await gql(client, QUERY, {"id": cid}))["customer"]["name"] == "Ann (via CRM)"


async def test_an_invalid_mapping_is_rejected_and_the_old_one_keeps_serving(reloadable, mappings, caplog):
    hub, client = reloadable
    cid = (await start_contact(client, email="bo@example.com", name="Bo"))["customer"]["id"]
    rewrite(mappings / "hub.yaml", NAME_AS_IS, "      name: {path: name, transform: [shout]}\n")
    assert await hub.reload() is False
    assert hub.wiring.version == 1
    assert f"{mappings / 'hub.yaml'}:" in hub.last_reload_error and "unknown transform 'shout'" in hub.last_reload_error
    assert "mapping reload rejected" in caplog.text
    assert (await gql(client, QUERY, {"id": cid}))["customer"]["name"] == "Bo"
    # A broken CM catalog is rejected the same way: the adapters of the new mapping never serve.
    shutil.copy(SHIPPED_MAPPINGS / "hub.yaml", mappings / "hub.yaml")
    offers = mappings / "cm" / "offers.yaml"
    rewrite(offers, "    priority: 3", "    priority: -3")
    assert await hub.reload() is False
    assert f"{offers}:" in hub.last_reload_error
    assert (await gql(client, "{ offers { id } }"))["offers"]


async def test_requests_in_flight_finish_on_the_mapping_they_started_with(reloadable, mappings):
    hub, client = reloadable
    cid = (await start_contact(client, email="cy@example.com", name="Cy"))["customer"]["id"]
    old_crm = hub.systems.all("profile_source")["crm"]
    real_fetch = old_crm.fetch
    entered, release = asyncio.Event(), asyncio.Event()

    async def gated(keys):  # observe, not replace: the real CRM answers once released
        entered.set()
        await release.wait()
        return await real_fetch(keys)

    old_crm.fetch = gated
    hub.cache.clear()
    in_flight = asyncio.create_task(gql(client, QUERY, {"id": cid}))
    await asyncio.wait_for(entered.wait(), 5)
    rewrite(mappings / "hub.yaml", NAME_AS_IS, NAME_TAGGED)
    assert await hub.reload(grace=2.0) is True
    fresh = await gql(client, QUERY, {"id": cid})  # a new request reads through the new wiring
    assert fresh["customer"]["name"] == "Cy (via CRM)"
    release.set()
    old = await asyncio.wait_for(in_flight, 5)
    assert old["customer"]["name"] == "Cy"  # finished on the old mapping, its adapter still open


async def test_a_new_flow_is_consumed_and_a_flow_switched_to_daily_stops_consuming(reloadable, mappings):
    hub, client = reloadable
    text = (mappings / "hub.yaml").read_text()
    switched = text.replace(
        '    events: ["customer.*"]\n    mode: realtime', '    events: ["customer.*"]\n    mode: daily'
    )
    assert switched != text
    (mappings / "hub.yaml").write_text(switched)
    assert await hub.reload() is True
    await start_contact(client, email="dee@example.com", name="Dee")  # customer.created waits for the run
    flow = hub.flow("customers-to-cm")
    await eventually(lambda: _depth(hub, flow.queue), timeout=10)
    (mappings / "hub.yaml").write_text(text)  # back to realtime: what waited is delivered
    assert await hub.reload() is True
    await hub.settle(timeout=10)
    assert await _depth(hub, flow.queue) == 0


async def _depth(hub, queue: str) -> int:
    return sum(q.depth for q in await hub.bus.stats() if q.queue == queue)


async def test_sighup_and_a_file_change_trigger_a_reload(reloadable, mappings):
    hub, _ = reloadable
    watcher = MappingWatcher(hub.reload, mappings, on_change=True, debounce_ms=50)
    watcher.start()
    try:
        await asyncio.sleep(0.3)  # the watcher is watching
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: hub.wiring.version == 2, timeout=10)
        rewrite(mappings / "hub.yaml", NAME_AS_IS, NAME_TAGGED)
        await eventually(lambda: hub.wiring.version == 3, timeout=10)
        assert hub.mapping.systems["crm"].profile["name"].template == "{name} (via CRM)"
    finally:
        await watcher.stop()


def test_hub_serve_reloads_on_sighup_and_on_a_file_change(tmp_path, mappings):
    port = free_port()
    env = {**os.environ, "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
           "HUB_BROKER_URL": "memory://", "HUB_MAPPINGS_DIR": str(mappings)}
    proc = subprocess.Popen([HUB, "serve", "--port", str(port), "--log-level", "warning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/healthz"

    def version() -> int | None:
        try:
            return httpx.get(url, timeout=1).json()["mappingVersion"]
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    def wait_for(expected: int) -> None:
        deadline = time.monotonic() + 30
        while version() != expected:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, f"mapping version never became {expected}"
            time.sleep(0.1)

    try:
        wait_for(1)
        proc.send_signal(signal.SIGHUP)
        wait_for(2)
        rewrite(mappings / "hub.yaml", NAME_AS_IS, NAME_TAGGED)
        wait_for(3)
        (mappings / "hub.yaml").write_text("systems: [broken\n")  # rejected: still version 3, still serving
        time.sleep(1.5)
        assert version() == 3
    finally:
        proc.terminate()
        proc.wait(timeout=15)
