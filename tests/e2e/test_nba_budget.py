"""The NBA budget through the API: CM slower than HUB_NBA_BUDGET_MS gets the channel the mapping's default
actions at once, marked fallback and never kept as a whole answer, and CM's late decision reaches a
`nextBestActions` subscriber over a real websocket (uvicorn) when it arrives."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from tests.e2e.test_server import next_message, server  # noqa: F401  (the uvicorn fixture)
from tests.support import START, eventually, gql

FIELDS = "offerId channel score reason decisionId fallback"
START_MARKED = START.replace("decisionId }", "decisionId fallback }")
RECORD = f"""mutation($c: ID!, $e: [ContactEventInput!]!) {{
  recordContactEvents(contactId: $c, events: $e) {{ accepted nextBestActions {{ {FIELDS} }} }} }}"""
CUSTOMER = f"query($id: ID!) {{ customer(id: $id) {{ name nextBestActions(channel: WEBSITE) {{ {FIELDS} }} }} }}"
SUBSCRIBE = f"subscription($id: ID!) {{ nextBestActions(customerId: $id, channel: WEBSITE) {{ {FIELDS} }} }}"
DEFAULTS = ["fallback:savings-plus", "fallback:app-download"]  # mappings/hub.yaml, for WEBSITE


@pytest.fixture
def hub_settings(hub_settings):
    """The shipped default budget (tests/conftest.py gives the other tests a long one)."""
    return hub_settings.model_copy(update={"nba_budget_ms": 200})


class SlowCM:
    """The running hub's own CM, made slow: each decision waits until the test opens the gate."""

    def __init__(self, hub) -> None:
        self.cm = hub.systems.one("decision_engine")
        self.real = self.cm.decide
        self.gate = asyncio.Event()
        self.asked = self.finished = 0
        self.cm.decide = self.decide

    async def decide(self, requests, pending=()):
        self.asked += 1
        try:
            await self.gate.wait()
            return await self.real(requests, pending)
        finally:
            self.finished += 1

    async def restore(self) -> None:
        """CM fast again, and every decision still running finished (none left for the hub's close)."""
        self.gate.set()
        await eventually(lambda: self.finished == self.asked)
        self.cm.decide = self.real


def is_fallback(nbas: list[dict]) -> bool:
    return bool(nbas) and all(n["fallback"] for n in nbas) and [n["decisionId"] for n in nbas] == DEFAULTS


def is_cms(nbas: list[dict]) -> bool:
    return bool(nbas) and not any(n["fallback"] or n["decisionId"].startswith("fallback:") for n in nbas)


async def test_a_slow_cm_gives_default_actions_at_once_never_kept_whole(client, hub):
    assert hub.settings.nba_budget_ms == 200
    slow = SlowCM(hub)
    try:
        began = time.monotonic()
        body = await gql(client, START_MARKED, {"input": {
            "channel": "WEBSITE", "identification": {"email": "slow.cm@example.com"}}}, ok=False)
        took = time.monotonic() - began
        assert "errors" not in body, body  # a budget overrun is no error: the actions say what they are
        started = body["data"]["startContact"]
        assert is_fallback(started["nextBestActions"]), started["nextBestActions"]
        assert all("did not answer within 200 ms" in n["reason"] and n["score"] == 0
                   for n in started["nextBestActions"])
        assert not slow.gate.is_set() and took < 1.5  # answered while CM was still deciding
        customer_id, contact_id = started["customer"]["id"], started["contact"]["id"]
        await hub.settle()  # CM has applied what the contact's start announced

        # The customer view answers within the budget too, with the defaults marked.
        view = await gql(client, CUSTOMER, {"id": customer_id})
        assert is_fallback(view["customer"]["nextBestActions"])

        # CM's late decision lands (and is announced); the same query again gets it: the answer with the
        # defaults was never kept whole at the edge.
        async with hub.feed.listen(customer_id) as changed:
            slow.gate.set()
            await asyncio.wait_for(changed.get(), 10)
        again = await gql(client, CUSTOMER, {"id": customer_id})
        assert is_cms(again["customer"]["nextBestActions"]), again

        # Recording events (CM ranks with them pending) has the same budget.
        slow.gate.clear()
        recorded = await gql(client, RECORD, {"c": contact_id, "e": [{"type": "INTEREST_SHOWN", "topic": "mortgage"}]})
        assert recorded["recordContactEvents"]["accepted"] == 1
        assert is_fallback(recorded["recordContactEvents"]["nextBestActions"])
    finally:
        await slow.restore()


async def test_a_subscriber_gets_cms_late_decision_after_the_defaults(server, hub):  # noqa: F811
    slow = SlowCM(hub)
    try:
        async with httpx.AsyncClient(base_url=f"http://{server}") as client:
            started = (await gql(client, START_MARKED, {"input": {
                "channel": "WEBSITE", "identification": {"email": "late.push@example.com"}}}))["startContact"]
            assert is_fallback(started["nextBestActions"])
            customer_id = started["customer"]["id"]
            await hub.settle()  # no change announcement still to come: the pushes below are CM's decisions

            async with websockets.connect(f"ws://{server}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
                await ws.send(json.dumps({"type": "connection_init"}))
                assert (await next_message(ws))["type"] == "connection_ack"
                await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                          "payload": {"query": SUBSCRIBE, "variables": {"id": customer_id}}}))
                first = await next_message(ws)
                assert first["type"] == "next", first
                assert is_fallback(first["payload"]["data"]["nextBestActions"]), first  # CM still deciding

                slow.gate.set()  # CM answers, late: the subscriber is pushed its decision
                pushed = await next_message(ws)
                assert pushed["type"] == "next", pushed
                real = pushed["payload"]["data"]["nextBestActions"]
                assert is_cms(real), real
                assert all(n["decisionId"].startswith("dec_") and n["channel"] == "WEBSITE" for n in real)
                await ws.send(json.dumps({"id": "1", "type": "complete"}))
    finally:
        await slow.restore()


async def test_recording_events_asks_cm_only_when_the_answer_selects_nbas(client, hub):
    started = (await gql(client, START, {"input": {
        "channel": "WEBSITE", "identification": {"email": "report.only@example.com"}}}))["startContact"]
    await hub.settle()
    slow = SlowCM(hub)
    try:
        event = [{"type": "PROPOSITION_SHOWN", "offerId": started["nextBestActions"][0]["offerId"]}]
        report_only = """mutation($c: ID!, $e: [ContactEventInput!]!) {
          recordContactEvents(contactId: $c, events: $e) { accepted eventIds } }"""
        reported = await gql(client, report_only, {"c": started["contact"]["id"], "e": event})
        assert reported["recordContactEvents"]["accepted"] == 1
        assert slow.asked == 0, "CM ranked for an answer that did not ask for NBAs"

        recorded = await gql(client, RECORD, {"c": started["contact"]["id"], "e": event})
        assert slow.asked == 1
        assert is_fallback(recorded["recordContactEvents"]["nextBestActions"])  # CM gated: past the budget
    finally:
        await slow.restore()


async def test_starting_a_contact_reads_the_view_and_asks_cm_only_when_the_answer_selects_them(client, hub):
    sources = hub.systems.all("profile_source")
    reads: list[str] = []
    real = {name: source.fetch for name, source in sources.items()}

    def counted(name):
        async def fetch(keys):
            reads.append(name)
            return await real[name](keys)
        return fetch

    for name, source in sources.items():
        source.fetch = counted(name)
    slow = SlowCM(hub)
    try:
        contact_only = """mutation($e: String!) {
          startContact(input: {channel: WEBSITE, identification: {email: $e}}) { created contact { id } } }"""
        started = (await gql(client, contact_only, {"e": "contact.only@example.com"}))["startContact"]
        assert started["created"] and started["contact"]["id"].startswith("con_")
        assert slow.asked == 0, "CM ranked for an answer that did not ask for NBAs"
        assert reads == [], "the view was read for an answer that did not ask for the customer"

        answered = await gql(client, START, {"input": {
            "channel": "WEBSITE", "identification": {"email": "contact.only@example.com"}}})
        whole = answered["startContact"]
        assert not whole["created"] and whole["customer"]["id"]
        assert sorted(set(reads)) == sorted(sources), "the view reads every profile source once asked"
        assert slow.asked == 1
        assert whole["nextBestActions"] and all(n["decisionId"].startswith("fallback:")
                                                for n in whole["nextBestActions"])  # CM gated
    finally:
        for name, source in sources.items():
            source.fetch = real[name]
        await slow.restore()
