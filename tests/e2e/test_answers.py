"""Whole answers kept at the edge (hub.api.answers): served again only while every read behind them is
current, never for mutations, live fields, errors or unknown keys, never across credentials."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from hub.api.app import create_app
from hub.config import Settings
from hub.demo import load_demo
from hub.runtime import Hub
from tests.support import RECORD, codes, gql, start_contact

VIEW = """query($e: String!) { customerByKey(email: $e) {
  id name offerHistory { offerId shown rejected } nextBestActions(channel: WEBSITE) { offerId decisionId } } }"""
ANNA = "anna.devries@example.com"


@pytest.fixture
async def app(hub):
    return create_app(hub=hub)


@pytest.fixture
async def http(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as c:
        yield c


async def ask(http, query: str, variables: dict | None = None, **headers: str) -> httpx.Response:
    return await http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)


async def test_a_query_asked_again_is_answered_whole_from_the_cache(app, http, hub):
    await load_demo(hub)
    await hub.settle()
    first = await ask(http, VIEW, {"e": ANNA})
    assert first.status_code == 200 and first.json()["data"]["customerByKey"]["name"] == "Anna de Vries"
    again = await ask(http, VIEW, {"e": ANNA})
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert app.state.answers.hits == 1
    # A GET of the same query is its own entry, kept the same way.
    url = "/graphql"
    params = {"query": "query { __typename }"}
    assert (await http.get(url, params=params)).json() == {"data": {"__typename": "Query"}}
    assert (await http.get(url, params=params)).json() == {"data": {"__typename": "Query"}}
    assert app.state.answers.hits == 2


async def test_an_event_cm_applied_makes_the_kept_answer_stale(app, http, hub):
    await load_demo(hub)
    await hub.settle()
    before = (await ask(http, VIEW, {"e": ANNA})).json()["data"]["customerByKey"]
    top = before["nextBestActions"][0]
    assert top["offerId"] not in {h["offerId"] for h in before["offerHistory"] if h["rejected"]}
    contact = (await start_contact(http, email=ANNA))["contact"]["id"]
    await gql(http, RECORD, {"contactId": contact, "events": [
        {"type": "PROPOSITION_SHOWN", "offerId": top["offerId"], "decisionId": top["decisionId"]},
        {"type": "PROPOSITION_RESPONSE", "offerId": top["offerId"], "response": "REJECTED"},
    ]})
    await hub.settle()
    after = (await ask(http, VIEW, {"e": ANNA})).json()["data"]["customerByKey"]
    history = {h["offerId"]: h for h in after["offerHistory"]}
    assert history[top["offerId"]]["rejected"] == 1
    assert top["offerId"] not in [n["offerId"] for n in after["nextBestActions"]]


async def test_an_unknown_key_is_not_kept_as_nobody(app, http, hub):
    query = 'query { customerByKey(email: "later@example.com") { id } }'
    assert (await ask(http, query)).json() == {"data": {"customerByKey": None}}
    created = await start_contact(http, email="later@example.com")
    assert (await ask(http, query)).json()["data"]["customerByKey"] == {"id": created["customer"]["id"]}
    assert app.state.answers.hits == 0


async def test_mutations_live_fields_and_errors_are_answered_live(app, http, hub):
    await load_demo(hub)
    for _ in range(2):
        assert (await ask(http, "query { operations { outboxBacklog } }")).status_code == 200
        await start_contact(http, email=ANNA)
        mixed = await ask(http, 'query { offers { id } operations { outboxBacklog } }')
        assert "errors" not in mixed.json()
        bad = await ask(http, VIEW.replace("channel: WEBSITE", "channel: WEBSITE, limit: 99"), {"e": ANNA})
        assert codes(bad.json()) == ["BAD_USER_INPUT"]
    assert app.state.answers.hits == 0


async def test_callers_with_other_credentials_never_share_an_answer(app, http, hub):
    await load_demo(hub)
    await hub.settle()  # CM has applied the demo customers: nothing changes their reads from here
    await ask(http, VIEW, {"e": ANNA}, authorization="Bearer one")
    await ask(http, VIEW, {"e": ANNA}, authorization="Bearer two")
    assert app.state.answers.hits == 0
    await ask(http, VIEW, {"e": ANNA}, authorization="Bearer one")
    assert app.state.answers.hits == 1


async def test_a_read_past_its_ttl_makes_the_answer_stale(tmp_path):
    hub = Hub(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/hub.db", cache_ttl_seconds=0.3,
                       decision_cache_seconds=0.3))
    await hub.start()
    try:
        await load_demo(hub)
        app = create_app(hub=hub)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as http:
            await hub.settle()
            query = 'query($e: String!) { customerByKey(email: $e) { name } }'
            await ask(http, query, {"e": ANNA})
            await ask(http, query, {"e": ANNA})
            assert app.state.answers.hits == 1
            await asyncio.sleep(0.4)
            assert (await ask(http, query, {"e": ANNA})).json()["data"]["customerByKey"]["name"]
            assert app.state.answers.hits == 1  # executed again: the CRM's read had expired
    finally:
        await hub.close()


async def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(http, hub):
    huge = b'{"query": "' + b"x" * (hub.settings.max_body_bytes + 1) + b'"}'
    answer = await http.post("/graphql", content=huge, headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert codes(answer.json()) == ["PAYLOAD_TOO_LARGE"]
