"""Erasure and export (GDPR articles 15, 17, 20), fanned out over the bus to every system, each answering
with a receipt: the built-in CRM, CM, LM and back office, the hub's own identity graph and contacts, and
an external loyalty system behind the REST adapter, played by a real HTTP server that fails and recovers.
A failure is retried by the bus until the system answers or the message is dead-lettered (then a replay
tries again); after an erasure the same email is a new customer and queued events about the erased
customer are dropped. Runs on both stacks (SQLite + in-process bus; PostgreSQL + RabbitMQ)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.config import SHIPPED_MAPPINGS
from hub.events import CloudEvent
from hub.store.privacy import privacy_requests, privacy_tombstones
from hub.store.tables import outbox, processed_messages
from hub_adapters.cm.tables import cm_profiles
from hub_adapters.crm.tables import crm_customers, crm_requests
from hub_adapters.lm.tables import lm_leads
from tests.e2e.test_cli import free_port
from tests.support import RECORD, START, codes, eventually, gql

RECEIPTS = "receipts { system status detail at attempts }"
FIELDS = f"id kind customerId status outstanding createdAt completedAt {RECEIPTS} download downloadExpiresAt"
ERASE = f"mutation($id: ID!) {{ eraseCustomer(id: $id) {{ {FIELDS} }} }}"
EXPORT = f"mutation($id: ID!) {{ exportCustomer(id: $id) {{ {FIELDS} }} }}"
GET = f"query($id: ID!) {{ privacyRequest(id: $id) {{ {FIELDS} }} }}"
BY_ID = "query($id: ID!) { customer(id: $id) { id name } }"
BY_EMAIL = "query($e: String!) { customerByKey(email: $e) { id name } }"
SUBMIT = """mutation($input: SubmitRequestInput!) { submitRequest(input: $input) { id status } }"""
LAUNCH = """mutation($input: LaunchCampaignInput!) { launchCampaign(input: $input) { id leads { id } } }"""
BUILT_IN = {"hub", "crm", "cm", "backoffice", "lm"}
NOT_SUPPORTED = ["email", "print", "callcenter", "shop"]


@dataclass
class Loyalty:
    """The external loyalty system's state, which the test steers."""

    members: dict[str, dict[str, Any]] = field(default_factory=dict)  # by email
    fail: int = 0  # the next erasures answer 503
    fail_always: bool = False
    erasures: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (key, headers)
    exports: int = 0
    url: str = ""


def loyalty_app(state: Loyalty) -> Starlette:
    async def member(request: Request) -> Response:
        key = request.path_params["key"]
        if request.method == "DELETE":
            state.erasures.append((key, dict(request.headers)))
            if state.fail_always or state.fail > 0:
                state.fail = max(0, state.fail - 1)
                return JSONResponse({"error": "down for maintenance"}, status_code=503)
            return Response(status_code=204 if state.members.pop(key, None) else 404)
        found = state.members.get(key)
        return JSONResponse(found) if found else JSONResponse({"error": "unknown"}, status_code=404)

    async def export(request: Request) -> Response:
        state.exports += 1
        found = state.members.get(request.path_params["key"])
        return JSONResponse({"member": found}) if found else JSONResponse({}, status_code=404)

    return Starlette(routes=[
        Route("/members/{key}", member, methods=["GET", "DELETE"]),
        Route("/members/{key}/export", export, methods=["GET"]),
    ])


@pytest.fixture
async def loyalty():
    state = Loyalty()
    port = free_port()
    # No access log: it would print the customers' emails in the paths.
    config = uvicorn.Config(loyalty_app(state), port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def mappings(tmp_path, loyalty):
    """The shipped deployment plus two external REST systems read by email: `loyalty`, configured for
    privacy requests, and `shop`, which is not (it answers NOT_SUPPORTED)."""
    folder = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, folder)
    hub_yaml = folder / "hub.yaml"
    data = yaml.safe_load(hub_yaml.read_text())
    data["systems"]["print"]["config"]["folder"] = str(tmp_path / "print")
    data["systems"]["loyalty"] = {
        "adapter": "rest",
        "key": "email",
        "timeout_seconds": 2,
        "config": {
            "base_url": loyalty.url,
            "fetch": {"by_key": {"path": "/members/{key}"}},
            "privacy": {"erase": {"path": "/members/{key}"},
                        "export": {"path": "/members/{key}/export", "record": "member"}},
            "breaker": None,
        },
        "profile": {"attributes.tier": "tier"},
    }
    data["systems"]["shop"] = {
        "adapter": "rest",
        "key": "email",
        "config": {"base_url": loyalty.url, "fetch": {"by_key": {"path": "/members/{key}"}}},
        "profile": {"attributes.shopTier": "tier"},
    }
    hub_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


@pytest.fixture
def hub_settings(hub_settings, mappings):
    return hub_settings.model_copy(update={"mappings_dir": mappings, "outbound_interval_seconds": 3600})


async def start(client, email: str, name: str | None = None, **more: str) -> dict[str, Any]:
    identification = {"email": email, **more}
    data = await gql(client, START, {"input": {"channel": "WEBSITE", "identification": identification,
                                              "name": name}})
    return data["startContact"]


async def settled(client, request_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        found = (await gql(client, GET, {"id": request_id}))["privacyRequest"]
        return found if found["status"] in statuses else None

    return await eventually(check, timeout=timeout, interval=0.05)


def by_system(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["system"]: r for r in request["receipts"]}


async def stored_keys(hub, request_id: str) -> Any:
    async with hub.engine.connect() as conn:
        return (await conn.execute(
            select(privacy_requests.c.identity_keys).where(privacy_requests.c.id == request_id)
        )).scalar()


async def rows(hub, table, column, value) -> list[Any]:
    async with hub.engine.connect() as conn:
        return list((await conn.execute(select(table).where(column == value))).all())


async def test_erasure_with_a_failing_system_that_recovers(client, hub, loyalty, caplog):
    caplog.set_level(logging.DEBUG, logger="hub")  # the hub's own logs, every level
    email = "petra.privacy@example.com"
    loyalty.members[email] = {"email": email, "tier": "gold"}
    loyalty.fail = 2  # the loyalty system is down for the first two tries
    started = await start(client, "Petra.Privacy@Example.com", "Petra Privacy")
    cid = started["customer"]["id"]
    await hub.settle()

    made = (await gql(client, ERASE, {"id": cid}))["eraseCustomer"]
    assert (made["kind"], made["customerId"], made["download"]) == ("ERASURE", cid, None)
    receipts = by_system(made)
    assert list(receipts) == ["hub", "crm", "cm", "backoffice", "lm", "email", "print", "callcenter",
                              "loyalty", "shop"]
    assert {s for s, r in receipts.items() if r["status"] == "NOT_SUPPORTED"} == set(NOT_SUPPORTED)
    assert "not configured for privacy requests" in receipts["shop"]["detail"]  # a REST system without it
    assert "does not handle privacy requests" in receipts["email"]["detail"]
    # The hub's own first step is done at once: nobody is found by the id or the email any more.
    assert (await gql(client, BY_ID, {"id": cid}))["customer"] is None
    assert (await gql(client, BY_EMAIL, {"e": email}))["customerByKey"] is None

    done = await settled(client, made["id"], "DONE")
    receipts = by_system(done)
    assert done["outstanding"] == [] and done["completedAt"]
    assert {s for s, r in receipts.items() if r["status"] == "DONE"} == BUILT_IN | {"loyalty"}
    assert receipts["loyalty"]["attempts"] == 2  # failed twice, retried by the bus, then done
    assert receipts["loyalty"]["detail"] == "DELETE /members/{key}: HTTP 204"
    assert receipts["crm"]["detail"].startswith("1 customer record")
    assert loyalty.members == {}
    assert [key for key, _ in loyalty.erasures] == [email] * 3
    assert {h["idempotency-key"] for _, h in loyalty.erasures} == {f"{made['id']}:loyalty"}
    assert await rows(hub, crm_customers, crm_customers.c.id, cid) == []
    assert await stored_keys(hub, made["id"]) is None  # every system answered: the keys are gone
    # The failures were told without personal data, in the receipts and in the hub's log.
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("hub"))
    assert "privacy request" in logged and "loyalty failed" in logged
    assert email.split("@")[0] not in logged.lower()


async def test_a_dead_lettered_receipt_is_answered_by_a_replay(client, hub, loyalty):
    email = "dora.deadletter@example.com"
    loyalty.members[email] = {"email": email, "tier": "silver"}
    loyalty.fail_always = True
    cid = (await start(client, email))["customer"]["id"]
    made = (await gql(client, ERASE, {"id": cid}))["eraseCustomer"]

    # Retried up to the delivery limit (3 in the tests), then dead-lettered: the request says so.
    failed = await settled(client, made["id"], "FAILED")
    loyalty_receipt = by_system(failed)["loyalty"]
    assert failed["outstanding"] == ["loyalty"]
    assert (loyalty_receipt["status"], loyalty_receipt["attempts"]) == ("FAILED", 3)
    assert loyalty_receipt["detail"] == "DELETE /members/{key}: HTTP 503 (1 attempt)"
    assert all(r["status"] in ("DONE", "NOT_SUPPORTED") for s, r in by_system(failed).items() if s != "loyalty")
    dead = await eventually(lambda: _dead(hub))
    assert [d.id for d in dead] and all("privacy.loyalty" in d.queue for d in dead)
    assert email not in dead[0].body.decode()  # the event names the request, not the customer's keys
    assert await stored_keys(hub, made["id"]) == [["email", email]]  # kept until loyalty answers

    loyalty.fail_always = False  # the system is back; an operator replays the dead letter
    assert await hub.bus.replay([d.id for d in dead]) == 1
    done = await settled(client, made["id"], "DONE")
    assert by_system(done)["loyalty"]["status"] == "DONE" and loyalty.members == {}
    assert await stored_keys(hub, made["id"]) is None


async def _dead(hub) -> list[Any]:
    return [d for d in await hub.bus.dead_letters() if "privacy" in d.queue]


async def test_the_export_is_one_document_with_every_systems_part(client, hub, loyalty):
    email = "edgar.export@example.com"
    loyalty.members[email] = {"email": email, "tier": "gold"}
    started = await start(client, email, "Edgar Export", phone="+31612345678")
    cid, contact = started["customer"]["id"], started["contact"]["id"]
    await gql(client, RECORD, {"contactId": contact, "events": [
        {"type": "PROPOSITION_SHOWN", "offerId": "savings-plus"}]})
    await gql(client, SUBMIT, {"input": {"contactId": contact, "kind": "COMPLAINT", "subject": "Late card"}})
    await gql(client, LAUNCH, {"input": {"offerId": "savings-plus", "customerIds": [cid], "channels": ["EMAIL"]}})
    await hub.settle()

    made = (await gql(client, EXPORT, {"id": cid}))["exportCustomer"]
    assert (made["kind"], made["status"], made["download"]) == ("EXPORT", "PENDING", None)
    done = await settled(client, made["id"], "DONE")
    doc = done["download"]
    kept = datetime.fromisoformat(done["downloadExpiresAt"]) - datetime.fromisoformat(done["completedAt"])
    assert kept == timedelta(days=7)
    assert (doc["requestId"], doc["customerId"]) == (made["id"], cid) and doc["exportedAt"]
    assert doc["notSupported"] == NOT_SUPPORTED
    parts = doc["systems"]
    assert set(parts) == BUILT_IN | {"loyalty"}
    assert {(k["kind"], k["value"]) for k in parts["hub"]["keys"]} == {("email", email), ("phone", "+31612345678")}
    assert [c["id"] for c in parts["hub"]["contacts"]] == [contact]
    assert parts["crm"]["customer"]["name"] == "Edgar Export"
    assert [r["subject"] for r in parts["crm"]["requests"]] == ["Late card"]
    assert parts["crm"]["requests"][0]["history"][0]["status"] == "OPEN"
    assert [(h["offerId"], h["shown"]) for h in parts["cm"]["offerHistory"]] == [("savings-plus", 1)]
    assert [(lead["offerId"], lead["channel"]) for lead in parts["lm"]["leads"]] == [("savings-plus", "EMAIL")]
    assert parts["backoffice"] == {}
    assert parts["loyalty"] == {"email": email, "tier": "gold"}
    # An export erases nothing.
    assert (await gql(client, BY_ID, {"id": cid}))["customer"]["name"] == "Edgar Export"

    # A redelivered request does nothing twice: the same event again changes no receipt.
    async with hub.engine.connect() as conn:
        body = (await conn.execute(
            select(outbox.c.body).where(outbox.c.type == "privacy.export.requested")
        )).scalar_one()
    exports = loyalty.exports
    await hub.bus.publish(CloudEvent.from_json(body))
    await hub.settle()
    again = (await gql(client, GET, {"id": made["id"]}))["privacyRequest"]
    assert again == done and loyalty.exports == exports


async def test_an_export_is_deleted_after_its_retention(hub_settings, loyalty):
    from hub.api.app import create_app
    from hub.runtime import Hub
    from hub.store.privacy import privacy_receipts
    from tests.conftest import drop_namespace

    settings = hub_settings.model_copy(update={"privacy_export_retention_seconds": 1.0})
    hub = Hub(settings)
    await hub.start()
    try:
        transport = httpx.ASGITransport(app=create_app(hub=hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            cid = (await start(client, "rita.retention@example.com", "Rita Retention"))["customer"]["id"]
            made = (await gql(client, EXPORT, {"id": cid}))["exportCustomer"]
            done = await settled(client, made["id"], "DONE")
            assert done["download"]["systems"]["crm"]["customer"]["name"] == "Rita Retention"
            await asyncio.sleep(1.2)
            assert (await gql(client, GET, {"id": made["id"]}))["privacyRequest"]["download"] is None
            assert await hub.wiring.privacy.expire() >= 1  # the retention round deletes the parts
            parts = await rows(hub, privacy_receipts, privacy_receipts.c.request_id, made["id"])
            assert parts and all(r.part is None for r in parts)
    finally:
        await hub.close()
        await drop_namespace(settings, [*(f.queue for f in hub.mapping.flows), *hub.privacy_queues])


async def test_after_erasure_the_same_email_is_a_new_customer(client, hub):
    email = "nina.new@example.com"
    first = (await start(client, email, "Nina Old"))["customer"]["id"]
    erased = (await gql(client, ERASE, {"id": first}))["eraseCustomer"]
    await settled(client, erased["id"], "DONE")
    assert await rows(hub, privacy_tombstones, privacy_tombstones.c.customer_id, first)

    again = await start(client, email)
    assert again["created"] is True and again["customer"]["id"] != first
    assert again["customer"]["name"] is None  # nothing of the erased customer comes back
    assert (await gql(client, BY_EMAIL, {"e": email}))["customerByKey"]["id"] == again["customer"]["id"]
    assert (await gql(client, BY_ID, {"id": first}))["customer"] is None
    # Erasing the erased customer again answers the first erasure; exporting them finds nobody.
    assert (await gql(client, ERASE, {"id": first}))["eraseCustomer"]["id"] == erased["id"]
    assert codes(await gql(client, EXPORT, {"id": first}, ok=False)) == ["NOT_FOUND"]
    assert codes(await gql(client, ERASE, {"id": "cus_00000000000000000000"}, ok=False)) == ["NOT_FOUND"]
    assert (await gql(client, GET, {"id": "prv_unknown"}))["privacyRequest"] is None


async def test_queued_events_for_an_erased_customer_are_dropped(client, hub):
    started = await start(client, "quentin.queued@example.com")
    cid, contact = started["customer"]["id"], started["contact"]["id"]
    await hub.settle()
    # CM stops taking contact events for a while: they wait in its queue, as behind a slow consumer.
    flow = hub.flow("contact-events-to-cm")
    await hub.bus.cancel(flow.queue)
    recorded = (await gql(client, RECORD, {"contactId": contact, "events": [
        {"type": "PROPOSITION_SHOWN", "offerId": "savings-plus"},
        {"type": "INTEREST_SHOWN", "topic": "mortgage"}]}))["recordContactEvents"]
    # And a request's status waits in the daily flow to CM.
    await gql(client, SUBMIT, {"input": {"contactId": contact, "kind": "QUOTE", "subject": "Mortgage"}})
    await eventually(lambda: _queued(hub, flow.queue))

    erased = (await gql(client, ERASE, {"id": cid}))["eraseCustomer"]
    await settled(client, erased["id"], "DONE")
    assert await rows(hub, crm_requests, crm_requests.c.customer_id, cid) == []

    await hub.bus.consume(flow.queue, hub.handler_for(flow))  # CM takes its queue again
    assert await hub.scheduler.deliver(hub.flow("request-status-to-cm")) >= 1  # and the daily run
    await hub.settle()
    # Dropped, not applied: CM has no profile of the erased customer, and the events count as handled.
    assert await rows(hub, cm_profiles, cm_profiles.c.customer_id, cid) == []
    assert await rows(hub, lm_leads, lm_leads.c.customer_id, cid) == []
    async with hub.engine.connect() as conn:
        handled = set((await conn.execute(
            select(processed_messages.c.event_id).where(processed_messages.c.destination == "cm")
        )).scalars())
    assert set(recorded["eventIds"]) <= handled


async def _queued(hub, queue: str) -> bool:
    if await hub.outbox.backlog(hub.engine):
        return False
    return any(q.queue == queue and q.depth >= 1 for q in await hub.bus.stats())


@pytest.mark.stack
async def test_the_privacy_tables_are_what_their_migrations_make(database_url):
    """The privacy component (hub.store.privacy) has a history of its own: migrated with the hub's, twice
    changes nothing, and the tables are exactly the ones the code declares (SQLite or PostgreSQL)."""
    from hub.store.db import PRIVACY_COMPONENT, create_engine, migrate
    from tests.integration.test_store import _diff, _version

    engine = create_engine(database_url)
    try:
        await migrate(engine)
        await migrate(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff, PRIVACY_COMPONENT) == []
        assert await _version(engine, PRIVACY_COMPONENT.version_table) == "privacy_0001"
    finally:
        await engine.dispose()
