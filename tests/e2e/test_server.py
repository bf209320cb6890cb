"""Against a running uvicorn: HTTP for mutations, the NBA subscription over a real websocket."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from hub.api.app import create_app
from tests.support import RECORD, START, gql, serving

SUBSCRIBE = """subscription($id: ID!) { nextBestActions(customerId: $id, channel: WEBSITE) { offerId score } }"""


@pytest.fixture
async def server(hub):
    async with serving(create_app(hub=hub)) as address:
        yield address


async def next_message(ws, timeout: float = 10.0) -> dict:
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if msg["type"] not in ("ping", "pong"):
            return msg


async def test_subscription_pushes_reranked_nbas(server, hub):
    async with httpx.AsyncClient(base_url=f"http://{server}") as client:
        start = (await gql(client, START, {"input": {"channel": "WEBSITE",
                                                     "identification": {"email": "live@example.com"}}}))
        start = start["startContact"]
        customer_id, contact_id = start["customer"]["id"], start["contact"]["id"]

        async with websockets.connect(f"ws://{server}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert (await next_message(ws))["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                      "payload": {"query": SUBSCRIBE, "variables": {"id": customer_id}}}))
            first = await next_message(ws)
            assert first["type"] == "next", first
            initial = [n["offerId"] for n in first["payload"]["data"]["nextBestActions"]]
            assert initial
            top = initial[0]

            recorded = await gql(client, RECORD, {"contactId": contact_id, "events": [
                {"type": "PROPOSITION_SHOWN", "offerId": top},
                {"type": "PROPOSITION_RESPONSE", "offerId": top, "response": "REJECTED"}]})
            assert top not in [n["offerId"] for n in recorded["recordContactEvents"]["nextBestActions"]]

            # CM consumes the events and re-ranks: the subscription pushes the new list.
            pushed = None
            for _ in range(5):
                msg = await next_message(ws)
                assert msg["type"] == "next", msg
                pushed = [n["offerId"] for n in msg["payload"]["data"]["nextBestActions"]]
                if top not in pushed:
                    break
            assert pushed is not None and top not in pushed

            await ws.send(json.dumps({"id": "1", "type": "complete"}))


async def test_subscription_to_unknown_customer_errors(server, hub):
    async with websockets.connect(f"ws://{server}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert (await next_message(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "9", "type": "subscribe",
                                  "payload": {"query": SUBSCRIBE, "variables": {"id": "cus_missing"}}}))
        msg = await next_message(ws)
        if msg["type"] == "next":
            assert msg["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        else:
            assert msg["type"] == "error" and msg["payload"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_healthz_and_http_over_a_socket(server, hub):
    async with httpx.AsyncClient(base_url=f"http://{server}") as client:
        r = await client.get("/healthz")
        assert r.status_code == 200 and r.json()["ok"] is True and set(r.json()["systems"]) == {
            "crm", "cm", "backoffice", "lm", "email", "print", "callcenter"}
        data = await gql(client, "{ offers { id title } }")
        assert len(data["offers"]) >= 3
