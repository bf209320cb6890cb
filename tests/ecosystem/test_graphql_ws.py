"""Subscriptions with the graphql-ws reference client (npm graphql-ws + ws), the credential in
connectionParams as browsers send it: the hub pushes the customer's NBAs, and again when recorded
events make CM re-rank them. (tests/security/test_websocket.py holds the same rules with Python's
websockets client.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.ecosystem.conftest import NODE_DIR
from tests.support import RECORD, gql, start_contact

SUBSCRIBE = ("subscription($id: ID!) { nextBestActions(customerId: $id, channel: WEBSITE) "
             "{ offerId score decisionId } }")


class Subscriber:
    """tests/node/subscribe.mjs running: its events, one JSON line each."""

    def __init__(self, process: asyncio.subprocess.Process):
        self.process = process

    async def event(self, timeout: float = 20) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            assert self.process.stderr is not None
            raise AssertionError(f"subscriber ended: {(await self.process.stderr.read()).decode()[-2000:]}")
        return json.loads(line)

    async def next(self) -> dict[str, Any]:
        while True:
            event = await self.event()
            if event["event"] == "next":
                return event["payload"]
            assert event["event"] == "connected", event

    async def finished(self) -> int:
        return await asyncio.wait_for(self.process.wait(), 20)


async def subscriber(url: str, token: str, variables: dict[str, Any], count: int = 2) -> Subscriber:
    process = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "subscribe.mjs"), url, token, SUBSCRIBE, json.dumps(variables), str(count),
        cwd=NODE_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    return Subscriber(process)


async def test_the_reference_client_gets_nbas_and_their_reranking(node_tools, served, hub):
    async with served.client() as client:
        start = await start_contact(client, email="graphql-ws@example.com")
    customer_id, contact_id = start["customer"]["id"], start["contact"]["id"]
    listener = await subscriber(served.ws_url, served.key, {"id": customer_id}, count=20)
    try:
        first = (await listener.next())["data"]["nextBestActions"]
        assert first, "the customer has NBAs"
        top = first[0]
        async with served.client() as client:
            recorded = (await gql(client, RECORD, {"contactId": contact_id, "events": [
                {"type": "PROPOSITION_SHOWN", "offerId": top["offerId"], "decisionId": top["decisionId"]},
                {"type": "PROPOSITION_RESPONSE", "offerId": top["offerId"], "response": "REJECTED"},
            ]}))["recordContactEvents"]
        # CM's re-ranked list is pushed: the rejected offer gone, as in the mutation's own answer. (On
        # RabbitMQ, a push for the contact's start may come first: CM learning the new customer.)
        pushed = (await listener.next())["data"]["nextBestActions"]
        while top["offerId"] in [n["offerId"] for n in pushed]:
            pushed = (await listener.next())["data"]["nextBestActions"]
        assert [n["offerId"] for n in pushed] == [n["offerId"] for n in recorded["nextBestActions"]]
    finally:
        if listener.process.returncode is None:
            listener.process.kill()
            await listener.process.wait()


async def test_the_reference_client_without_a_valid_key_is_closed_with_4401(node_tools, served):
    listener = await subscriber(served.ws_url, "mkh_not_a_key", {"id": "cus_x"})
    events = [await listener.event(), await listener.event()]
    assert [e["event"] for e in events] == ["closed", "error"], events
    assert events[0]["code"] == events[1]["error"]["code"] == 4401
    assert await listener.finished() == 0


async def test_the_reference_client_without_the_scope_gets_forbidden(node_tools, served, new_key):
    writer = await new_key("contact:write")
    async with served.client() as client:
        customer_id = (await start_contact(client, email="ws-scope@example.com"))["customer"]["id"]
    listener = await subscriber(served.ws_url, writer, {"id": customer_id})
    events = []
    while not events or events[-1]["event"] not in ("error", "next"):
        events.append(await listener.event())
    refused = events[-1]
    errors = refused["error"] if refused["event"] == "error" else refused["payload"]["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"], refused
    assert await listener.finished() == 0
