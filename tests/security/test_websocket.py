"""The same credential rules over graphql-transport-ws, against a running uvicorn: the token in
connection_init (or the upgrade's header), close 4401 without one, scopes per operation, and caps on
sockets and subscriptions per credential."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from hub.model import Key
from hub.security.scopes import CONTACT_WRITE, CUSTOMER_READ
from tests.support import serving, start_contact

SUBSCRIBE = "subscription($id: ID!) { nextBestActions(customerId: $id, channel: WEBSITE) { offerId } }"


@pytest.fixture
async def server(app):
    async with serving(app) as address:
        yield f"ws://{address}/graphql"


@contextlib.asynccontextmanager
async def socket(url, payload=None, headers=None):
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "connection_init", **({"payload": payload} if payload else {})}))
        yield ws


async def message(ws, timeout: float = 10.0) -> dict:
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if msg["type"] not in ("ping", "pong"):
            return msg


async def closed_with(ws) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        await message(ws)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


@pytest.fixture
async def customer_id(new_key, caller):
    async with caller(await new_key()) as client:
        return (await start_contact(client, email="ws@example.com"))["customer"]["id"]


async def test_no_or_a_bad_credential_closes_with_4401(server):
    for payload in (None, {"authorization": "Bearer nonsense"}, {"authorization": "mkh_123"},
                    {"authorization": 42}):
        async with socket(server, payload) as ws:
            assert await closed_with(ws) == 4401


async def test_a_subscription_needs_a_credential_and_its_scope(server, new_key, customer_id):
    reader = await new_key(frozenset({CUSTOMER_READ}))
    async with socket(server, {"authorization": f"Bearer {reader}"}) as ws:
        assert (await message(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": SUBSCRIBE, "variables": {"id": customer_id}}}))
        first = await message(ws)
        assert first["type"] == "next" and first["payload"]["data"]["nextBestActions"], first
    writer = await new_key(frozenset({CONTACT_WRITE}))
    async with socket(server, {"authorization": f"Bearer {writer}"}) as ws:
        assert (await message(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": SUBSCRIBE, "variables": {"id": customer_id}}}))
        refused = await message(ws)
        errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"], refused


async def test_the_upgrade_header_is_a_credential_too(server, new_key):
    token = await new_key(frozenset({CUSTOMER_READ}))
    async with socket(server, headers={"Authorization": f"Bearer {token}"}) as ws:
        assert (await message(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ offers { id } }"}}))
        assert (await message(ws))["type"] == "next"


async def test_a_mutation_over_the_socket_needs_its_scope(server, new_key, hub):
    token = await new_key(frozenset({CUSTOMER_READ}))
    mutation = ('mutation { startContact(input: {channel: WEBSITE, identification: {cookieId: "ws-c"}}) '
                "{ contact { id } } }")
    async with socket(server, {"authorization": f"Bearer {token}"}) as ws:
        assert (await message(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "m", "type": "subscribe", "payload": {"query": mutation}}))
        answer = await message(ws)
    assert answer["type"] == "next"
    assert [e["extensions"]["code"] for e in answer["payload"]["errors"]] == ["FORBIDDEN"]
    assert await hub.contacts.find([Key("cookie", "ws-c")]) is None  # nothing recorded


async def test_sockets_and_subscriptions_per_credential_are_capped(server, hub, new_key, customer_id):
    hub.security.max_connections = 2
    hub.security.max_subscriptions = 1
    token = await new_key(frozenset({CUSTOMER_READ}))
    auth = {"authorization": f"Bearer {token}"}
    async with socket(server, auth) as one, socket(server, auth) as two:
        assert (await message(one))["type"] == "connection_ack"
        assert (await message(two))["type"] == "connection_ack"
        async with socket(server, auth) as three:
            assert await closed_with(three) == 4429
        subscribe = {"query": SUBSCRIBE, "variables": {"id": customer_id}}
        await one.send(json.dumps({"id": "a", "type": "subscribe", "payload": subscribe}))
        assert (await message(one))["type"] == "next"
        await two.send(json.dumps({"id": "b", "type": "subscribe", "payload": subscribe}))
        refused = await message(two)
        errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["TOO_MANY_SUBSCRIPTIONS"], refused
    # Closed sockets give their places back.
    await asyncio.sleep(0.2)
    async with socket(server, auth) as again:
        assert (await message(again))["type"] == "connection_ack"
