"""The hub as an Apollo Federation 2 subgraph: its SDL, fetched from the running hub with
`_service { sdl }`, composes with a second subgraph (a loyalty system extending Customer with points)
under Apollo's composition library (npm @apollo/composition); and a router's entity fetch through
`_entities` resolves customers under the same rules as Query.customer."""

from __future__ import annotations

import json

from tests.ecosystem.conftest import node
from tests.support import START, codes, gql

LOYALTY = """
extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key"])

type Customer @key(fields: "id") {
  id: ID!
  points: Int!
}

type Query {
  topLoyalCustomers: [Customer!]!
}
"""
ENTITIES = """
query($representations: [_Any!]!) {
  _entities(representations: $representations) { __typename ... on Customer { id name emails } }
}
"""


async def compose(subgraphs: list[dict[str, str]]) -> dict:
    return json.loads(await node("compose.mjs", stdin=json.dumps(subgraphs)))


async def test_the_hubs_subgraph_composes_with_another(node_tools, served):
    async with served.client() as client:
        sdl = (await gql(client, "{ _service { sdl } }"))["_service"]["sdl"]
    assert 'type Customer @key(fields: "id"' in sdl
    assert '@link(url: "https://specs.apollo.dev/federation/v2.7"' in sdl
    result = await compose([
        {"name": "hub", "url": served.url, "sdl": sdl},
        {"name": "loyalty", "url": "http://loyalty.test/graphql", "sdl": LOYALTY},
    ])
    assert "errors" not in result, result.get("errors")
    supergraph = result["supergraphSdl"]
    # The supergraph's Customer has the hub's fields and the loyalty system's, joined on id.
    customer = supergraph[supergraph.index("type Customer"):]
    customer = customer[: customer.index("\n}\n")]
    for graph in ("HUB", "LOYALTY"):
        assert f'@join__type(graph: {graph}, key: "id"' in customer
    assert "points: Int! @join__field(graph: LOYALTY)" in customer
    assert "emails: [String!]" in customer and "name: String" in customer
    # The hub's scope rules travel into the supergraph, for the router to enforce as well.
    assert '@requiresScopes(scopes: [["customer:read:pii"]])' in customer
    assert "_entities" not in supergraph and "_service" not in supergraph


async def test_a_conflicting_subgraph_fails_composition(node_tools, served):
    """The composition really checks: a subgraph giving Customer.name another type is refused."""
    async with served.client() as client:
        sdl = (await gql(client, "{ _service { sdl } }"))["_service"]["sdl"]
    clash = LOYALTY.replace("points: Int!", "points: Int!\n  name: Int! @shareable").replace(
        'import: ["@key"]', 'import: ["@key", "@shareable"]')
    result = await compose([{"name": "hub", "url": served.url, "sdl": sdl},
                            {"name": "loyalty", "url": "http://loyalty.test/graphql", "sdl": clash}])
    assert result.get("errors"), result


async def test_entities_resolve_customers_under_the_customer_rules(served, new_key):
    async with served.client() as client:
        started = await gql(client, START, {"input": {
            "channel": "WEBSITE", "name": "Fed Eration", "identification": {"email": "federated@example.com"}}})
        customer_id = started["startContact"]["customer"]["id"]
        representations = [{"__typename": "Customer", "id": customer_id},
                           {"__typename": "Customer", "id": "cus_unknown"}]
        data = await gql(client, ENTITIES, {"representations": representations})
    assert data["_entities"] == [
        {"__typename": "Customer", "id": customer_id, "name": "Fed Eration", "emails": ["federated@example.com"]},
        None,
    ]
    # customer:read without the PII scope: the customer, its emails null with FORBIDDEN (as Query.customer).
    reader = await new_key("customer:read")
    async with served.client(reader) as client:
        body = await gql(client, ENTITIES, {"representations": representations[:1]}, ok=False)
    assert body["data"]["_entities"][0]["name"] == "Fed Eration"
    assert body["data"]["_entities"][0]["emails"] is None and codes(body) == ["FORBIDDEN"]
    # Without customer:read: nothing.
    writer = await new_key("contact:write")
    async with served.client(writer) as client:
        body = await gql(client, ENTITIES, {"representations": representations[:1]}, ok=False)
    assert codes(body) == ["FORBIDDEN"] and body["errors"][0]["extensions"]["scope"] == "customer:read"


async def test_a_malformed_representation_is_the_callers_mistake(served):
    async with served.client() as client:
        for given in ({"id": "x"}, {"__typename": "Offer", "id": "x"}, {"__typename": "Customer"},
                      {"__typename": "Customer", "id": 5}, {"__typename": "Customer", "id": "x" * 20_000},
                      "Customer:x", None):
            body = await gql(client, ENTITIES, {"representations": [given]}, ok=False)
            assert codes(body) == ["BAD_USER_INPUT"], (given, body)
            assert "Traceback" not in json.dumps(body)


async def test_the_sdl_needs_an_authenticated_caller(served):
    async with served.client(key="") as anonymous:
        response = await anonymous.post("/graphql", json={"query": "{ _service { sdl } }"})
    assert response.status_code == 401
