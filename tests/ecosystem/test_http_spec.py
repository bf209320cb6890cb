"""The GraphQL-over-HTTP spec in full: graphql-http's server audit (npm, the spec's reference
implementation) against the running hub, with a valid key, passes every MUST and warns on no SHOULD;
and the points it checks, asserted here too so a failure reads plainly."""

from __future__ import annotations

import json

import pytest

from tests.ecosystem.conftest import node
from tests.support import start_contact

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def test_graphql_http_audit_passes_in_full(node_tools, served):
    results = json.loads(await node("audit.mjs", served.url, served.key))
    assert len(results) > 50, "the audit ran its checks"
    failed = [r for r in results if r["status"] != "ok"]
    assert not failed, json.dumps(failed, indent=2)[:4000]
    levels = {r["name"].split(" ", 1)[0] for r in results}
    assert {"MUST", "SHOULD"} <= levels


async def test_the_audit_without_a_key_is_refused(node_tools, served):
    """Authentication stays on for the audit's requests: without a key every MUST fails, on a 401."""
    results = json.loads(await node("audit.mjs", served.url, ""))
    must = [r for r in results if r["name"].startswith("MUST")]
    assert must and all(r["status"] == "error" for r in must)
    assert {r.get("response", {}).get("status") for r in results if r["status"] != "ok"} == {401}


async def test_graphql_response_json_is_answered_when_asked_for(served):
    async with served.client() as client:
        ok = await client.post("/graphql", json={"query": "{ __typename }"},
                               headers={"accept": f"{GRAPHQL_RESPONSE}, application/json;q=0.9"})
        assert ok.status_code == 200 and ok.headers["content-type"].startswith(GRAPHQL_RESPONSE)
        assert ok.json() == {"data": {"__typename": "Query"}}
        # A request error (nothing ran) is a 400 without `data` in that type...
        for document in ("{", "{ nope }"):
            bad = await client.post("/graphql", json={"query": document}, headers={"accept": GRAPHQL_RESPONSE})
            assert bad.status_code == 400 and bad.headers["content-type"].startswith(GRAPHQL_RESPONSE)
            assert "data" not in bad.json() and bad.json()["errors"][0]["extensions"]["code"]
        coercion = await client.post("/graphql", headers={"accept": GRAPHQL_RESPONSE}, json={
            "query": "query($id: ID!) { customer(id: $id) { id } }", "variables": {"id": {"no": 1}}})
        assert coercion.status_code == 400 and "data" not in coercion.json()
        # ...and a 200 with "data": null in application/json (the default, also for */*).
        for accept in ("application/json", "*/*", None):
            headers = {"accept": accept} if accept else {}
            legacy = await client.post("/graphql", json={"query": "{ nope }"}, headers=headers)
            assert legacy.status_code == 200 and legacy.headers["content-type"].startswith("application/json")
            assert legacy.json()["data"] is None
        # A field error ran: 200 with data in either type.
        field_error = await client.post("/graphql", headers={"accept": GRAPHQL_RESPONSE}, json={
            "query": "{ customers(ids: []) { id } }"})
        assert field_error.status_code == 200 and "data" in field_error.json()


async def test_get_rules(served):
    async with served.client() as client:
        query = await client.get("/graphql", params={"query": "{ __typename }"},
                                 headers={"accept": GRAPHQL_RESPONSE})
        assert query.status_code == 200 and query.json() == {"data": {"__typename": "Query"}}
        mutation = await client.get("/graphql", params={"query": "mutation { endContact(contactId: \"c\") { id } }"},
                                    headers={"accept": GRAPHQL_RESPONSE})
        assert mutation.status_code == 405 and mutation.headers["allow"] == "POST"
        assert mutation.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
        missing = await client.get("/graphql", headers={"accept": "application/json"})
        assert missing.status_code == 400
        bad_variables = await client.get("/graphql", params={"query": "{ __typename }", "variables": "{nope"})
        assert bad_variables.status_code == 400


@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_the_answer_cache_keeps_working_in_either_type(served, accept):
    answers = served.app.state.answers
    async with served.client() as client:
        customer = (await start_contact(client, email=f"cache-{accept[12:16]}@example.com"))["customer"]["id"]
        ask = {"query": "query($id: ID!) { customer(id: $id) { id name } }", "variables": {"id": customer}}
        first = await client.post("/graphql", json=ask, headers={"accept": accept})
        hits = answers.hits
        second = await client.post("/graphql", json=ask, headers={"accept": accept})
    assert second.status_code == first.status_code == 200
    assert second.content == first.content and second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["content-type"].startswith(accept)
    assert answers.hits == hits + 1
