"""An external CRM with ids of its own (CRM-000123) plays the contact registry without a change to the
hub: its id becomes a key of kind `crm` in the identity graph, and the view reads the CRM by it.

The CRM is a real HTTP server; its adapter is what an integrator would write (a class on the SDK,
registered under the entry-point group; here added to the registry for the test)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Mapping, Sequence
from importlib.metadata import EntryPoint
from typing import Any, ClassVar

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub import registry
from hub.api.app import create_app
from hub.config import SHIPPED_MAPPINGS, Settings
from hub.ports import (
    AdapterContext,
    Contact,
    ContactRegistry,
    CustomerFacts,
    Health,
    ProfileSource,
    Record,
    Tx,
)
from hub.runtime import Hub
from hub.store.tables import customer_keys
from tests.e2e.test_cli import free_port
from tests.support import START, gql


class ExternalCRM:
    """A contact registry and profile source over the CRM's HTTP API."""

    ports: ClassVar[tuple[type, ...]] = (ProfileSource, ContactRegistry)

    def __init__(self, ctx: AdapterContext):
        self.system = ctx.system
        self._base = ctx.config["base_url"]
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self._base, timeout=5)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def check(self) -> Health:
        assert self._client is not None
        return Health((await self._client.get("/customers")).status_code == 200)

    async def fetch(self, keys: Sequence[str]) -> Mapping[str, Record]:
        assert self._client is not None
        answer = (await self._client.get("/customers", params={"ids": ",".join(keys)})).json()
        return {r["crmId"]: r for r in answer["customers"]}

    async def upsert_customer(self, tx: Tx, facts: CustomerFacts) -> str | None:
        assert self._client is not None
        body = {"name": facts.name, "email": facts.emails[0] if facts.emails else None}
        return (await self._client.post("/customers", json=body)).json()["crmId"]

    async def register_contact(self, tx: Tx, contact: Contact) -> None:
        assert self._client is not None
        await self._client.post("/contacts", json={"id": contact.id, "channel": contact.channel.value})

    async def end_contact(self, tx: Tx, contact: Contact) -> None:
        assert self._client is not None
        await self._client.post("/contacts", json={"id": contact.id, "ended": True})


def crm_app(store: dict[str, dict[str, Any]], contacts: list[dict[str, Any]]) -> Starlette:
    async def customers(request: Request) -> JSONResponse:
        if request.method == "POST":
            body = await request.json()
            for record in store.values():
                if body["email"] and record["primaryEmail"] == body["email"]:
                    record["fullName"] = body["name"] or record["fullName"]
                    return JSONResponse(record)
            crm_id = f"CRM-{len(store) + 123:06d}"
            store[crm_id] = {"crmId": crm_id, "fullName": body["name"], "primaryEmail": body["email"],
                             "tier": "gold"}
            return JSONResponse(store[crm_id])
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        return JSONResponse({"customers": [store[i] for i in ids if i in store]})

    async def contact(request: Request) -> JSONResponse:
        contacts.append(await request.json())
        return JSONResponse({})

    return Starlette(routes=[Route("/customers", customers, methods=["GET", "POST"]),
                             Route("/contacts", contact, methods=["POST"])])


@pytest.fixture
async def crm_server():
    store: dict[str, dict[str, Any]] = {}
    contacts: list[dict[str, Any]] = []
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(crm_app(store, contacts), port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}", store, contacts
    server.should_exit = True
    await task


def external_crm_mapping(tmp_path, monkeypatch, base_url: str, essential: bool = False):
    installed = registry.adapter_factories()
    ours = EntryPoint("external-crm", f"{__name__}:ExternalCRM", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "adapter_factories", lambda: {**installed, "external-crm": ours})
    mappings = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, mappings)
    hub_yaml = mappings / "hub.yaml"
    text = hub_yaml.read_text()
    crm_block = text[text.index("  crm:\n"):text.index("  cm:\n")]
    # This CRM keeps no requests and records no sales: it plays neither role nor that flow's destination.
    text = text.replace("  request_registry: crm", "")
    sales = text[text.index("  - name: sales-to-crm"):text.index("  - name: request-status-to-cm")]
    text = text.replace(sales, "")
    hub_yaml.write_text(text.replace(crm_block, f"""  crm:
    adapter: external-crm
    key: crm               # read by the CRM's own id, a key kind of its own
    essential: {str(essential).lower()}
    config:
      base_url: {base_url}
    profile:
      name: fullName
      emails: primaryEmail
      attributes.tier: tier
"""))
    return mappings


async def test_an_external_crm_with_its_own_ids_plays_the_contact_registry(tmp_path, monkeypatch, crm_server):
    base_url, store, contacts = crm_server
    mappings = external_crm_mapping(tmp_path, monkeypatch, base_url)
    hub = Hub(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", mappings_dir=mappings))
    await hub.start()
    try:
        transport = httpx.ASGITransport(app=create_app(hub=hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            started = (await gql(client, START, {"input": {
                "channel": "CALLCENTER", "name": "Anna de Vries",
                "identification": {"email": "anna@example.com"}}}))["startContact"]
            cid = started["customer"]["id"]
            assert list(store) == ["CRM-000123"]
            assert contacts == [{"id": started["contact"]["id"], "channel": "CALLCENTER"}]
            async with hub.engine.connect() as conn:
                keys = (await conn.execute(
                    select(customer_keys.c.kind, customer_keys.c.value).where(customer_keys.c.customer_id == cid)
                )).all()
            assert sorted(map(tuple, keys)) == [("crm", "CRM-000123"), ("email", "anna@example.com")]
            data = await gql(client, 'query($id: ID!) { customer(id: $id) { name emails attributes '
                                     'sources { field system } } }', {"id": cid})
            customer = data["customer"]
            assert customer["name"] == "Anna de Vries" and customer["emails"] == ["anna@example.com"]
            assert customer["attributes"] == {"tier": "gold"}
            assert {s["field"]: s["system"] for s in customer["sources"]}["attributes.tier"] == "crm"
            # A channel that knows the CRM's id finds the customer by it.
            by_crm = await gql(client, 'query($k: SystemKeyInput!) { customerByKey(systemKey: $k) { id } }',
                               {"k": {"system": "crm", "id": "CRM-000123"}})
            assert by_crm["customerByKey"]["id"] == cid
            unknown = await gql(client, 'query { customerByKey(systemKey: {system: "crm", id: "CRM-999"}) { id } }')
            assert unknown["customerByKey"] is None
            bad = await gql(client, 'query { customerByKey(systemKey: {system: "nope", id: "x"}) { id } }', ok=False)
            assert [e["extensions"]["code"] for e in bad["errors"]] == ["BAD_USER_INPUT"]
            # The same visitor again: the CRM is told, and keeps its one id.
            again = (await gql(client, START, {"input": {
                "channel": "WEBSITE", "identification": {"email": "anna@example.com"}}}))["startContact"]
            assert again["customer"]["id"] == cid and list(store) == ["CRM-000123"]
    finally:
        await hub.close()


async def test_the_hub_serves_with_a_non_essential_system_down_and_healthz_says_so(tmp_path, monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    mappings = external_crm_mapping(tmp_path, monkeypatch, dead)
    hub = Hub(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", mappings_dir=mappings))
    await hub.start()
    try:
        transport = httpx.ASGITransport(app=create_app(hub=hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            health = await client.get("/healthz")
            body = health.json()
            assert body["systems"]["crm"]["ok"] is False and body["systems"]["cm"]["ok"] is True
            assert health.status_code == 200 and body["ok"] is True and body["degraded"] is True
            assert dead not in health.text  # no addresses in an answer
            offers = await gql(client, "{ offers { id } }")  # the rest still serves
            assert offers["offers"]
    finally:
        await hub.close()


async def test_an_essential_system_down_keeps_the_hub_from_starting(tmp_path, monkeypatch):
    from hub.registry import EssentialSystemDown

    dead = f"http://127.0.0.1:{free_port()}"
    mappings = external_crm_mapping(tmp_path, monkeypatch, dead, essential=True)
    hub = Hub(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", mappings_dir=mappings))
    with pytest.raises(EssentialSystemDown, match="essential system 'crm' is down"):
        await hub.start()
    await hub.close()


async def test_healthz_is_503_while_an_essential_system_is_down(tmp_path, monkeypatch, crm_server):
    base_url, _, _ = crm_server
    mappings = external_crm_mapping(tmp_path, monkeypatch, base_url, essential=True)
    hub = Hub(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", mappings_dir=mappings))
    await hub.start()
    try:
        transport = httpx.ASGITransport(app=create_app(hub=hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            assert (await client.get("/healthz")).status_code == 200
            crm = hub.systems.adapters["crm"]
            await crm.close()
            crm._base = f"http://127.0.0.1:{free_port()}"  # the CRM moved away: now unreachable
            await crm.start()
            health = await client.get("/healthz")
            assert health.status_code == 503 and health.json()["systems"]["crm"]["essential"] is True
    finally:
        await hub.close()
