"""Limits at the edge (issue 9): cost, depth, aliases, tokens, introspection, security headers, CORS over
HTTP and websocket, slow bodies and idle websockets, and the tables that give every input a limit."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from graphql import GraphQLInputObjectType, GraphQLList, GraphQLNonNull, get_named_type
from sqlalchemy import func, select
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hub.api import inputs
from hub.api.app import create_app
from hub.api.schema import MAX_CUSTOMERS, schema
from hub.store.tables import customers
from tests.support import CUSTOMER, START, codes, gql, serving, start_contact

NESTED = """query($ids: [ID!]!) { customers(ids: $ids) {
  contacts { customer { contacts { customer { contacts { id } } } } } } }"""


async def customer_count(hub) -> int:
    async with hub.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(customers))).scalar_one()


@contextlib.asynccontextmanager
async def edge(hub, monkeypatch, **settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app built with these settings (the edge reads them when the app is made)."""
    monkeypatch.setattr(hub, "settings", hub.settings.model_copy(update=settings))
    app = create_app(hub=hub)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as client:
        yield client


@contextlib.asynccontextmanager
async def served(hub, monkeypatch, **settings) -> AsyncIterator[str]:
    """The same, served by uvicorn: its websocket URL."""
    monkeypatch.setattr(hub, "settings", hub.settings.model_copy(update=settings))
    async with serving(create_app(hub=hub)) as address:
        yield address


# --- Cost ---------------------------------------------------------------------------------------

async def test_lists_nested_in_lists_are_refused_before_they_run(client, hub):
    started = await start_contact(client, email="cost@example.com")
    body = await gql(client, NESTED, {"ids": [started["customer"]["id"]]}, ok=False)
    assert codes(body) == ["QUERY_TOO_COMPLEX"] and body["data"] is None
    assert body["errors"][0]["extensions"]["maxCost"] == hub.settings.max_query_cost
    # The same selection for one id written in the document costs a hundredth: it runs.
    one = NESTED.replace("query($ids: [ID!]!)", "query").replace("$ids", f'["{started["customer"]["id"]}"]')
    assert (await gql(client, one))["customers"][0]["contacts"]

    # A mutation that would nest lists is refused before it runs: nobody is created.
    before = await customer_count(hub)
    selection = "customer { contacts { customer { contacts { customer { contacts { id } } } } } }"
    aliased = " ".join(
        f'a{n}: startContact(input: {{channel: WEBSITE, identification: {{email: "c{n}@example.com"}}}}) '
        f"{{ {selection} }}"
        for n in range(20)  # 20 x 1223: each contacts list counts 10
    )
    body = await gql(client, f"mutation {{ {aliased} }}", ok=False)
    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    assert await customer_count(hub) == before


async def test_a_large_limit_counts_in_the_cost(client, hub):
    body = await gql(client, '{ callbacks(limit: 100000000) { id customer { contacts { id } } } }', ok=False)
    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    body = await gql(client, "{ callbacks(limit: 5) { id customer { contacts { id } } } }")
    assert body["callbacks"] == []


async def test_the_cost_limit_comes_from_the_settings(client, hub, monkeypatch):
    started = await start_contact(client, email="cheap@example.com")
    async with edge(hub, monkeypatch, max_query_cost=20) as small:
        body = await gql(small, CUSTOMER, {"id": started["customer"]["id"]}, ok=False)
        assert codes(body) == ["QUERY_TOO_COMPLEX"]
        assert (await gql(small, "query($id: ID!) { customer(id: $id) { id name } }",
                          {"id": started["customer"]["id"]}))["customer"]


# --- Depth, aliases, tokens: each refused with its own code ---------------------------------------------

async def test_depth_aliases_and_tokens_have_codes(client, hub):
    deep = ('query { customer(id: "x") { contacts { customer { contacts { customer { contacts { customer {'
            " contacts { customer { contacts { customer { id } } } } } } } } } } } }")
    body = await gql(client, deep, ok=False)
    assert codes(body)[0] == "QUERY_TOO_DEEP" and "depth" in body["errors"][0]["message"]
    body = await gql(client, "{" + "a{" * 600 + "b" + "}" * 601, ok=False)
    assert codes(body) == ["QUERY_TOO_DEEP"]
    aliases = " ".join(f"a{n}: __typename" for n in range(hub.settings.max_aliases + 1))
    body = await gql(client, f"{{ {aliases} }}", ok=False)
    assert codes(body) == ["TOO_MANY_ALIASES"]
    body = await gql(client, "{" + " __typename" * 6000 + " }", ok=False)
    assert codes(body) == ["QUERY_TOO_LARGE"]


# --- Introspection -------------------------------------------------------------------------------

async def test_introspection_can_be_turned_off(client, hub, monkeypatch):
    assert (await gql(client, "{ __schema { queryType { name } } }"))["__schema"]["queryType"]["name"] == "Query"
    async with edge(hub, monkeypatch, introspection=False) as closed:
        for query in ("{ __schema { types { name } } }", '{ __type(name: "Customer") { name } }',
                      "query { ...F } fragment F on Query { __schema { queryType { name } } }"):
            body = await gql(closed, query, ok=False)
            assert set(codes(body)) == {"INTROSPECTION_DISABLED"}, body
        assert (await gql(closed, "{ __typename }"))["__typename"] == "Query"


# --- Headers on every answer, CORS ----------------------------------------------------------------

def assert_security_headers(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"


async def test_every_answer_has_the_security_headers(client, hub):
    started = await start_contact(client, email="headers@example.com")
    query = {"query": "query($id: ID!) { customer(id: $id) { id } }", "variables": {"id": started["customer"]["id"]}}
    first = await client.post("/graphql", json=query)
    again = await client.post("/graphql", json=query)  # from the answer cache
    assert first.status_code == again.status_code == 200 and first.content == again.content
    refused = await client.post("/graphql", content=b"[]", headers={"content-type": "application/json"})
    too_large = await client.post("/graphql", content=b"x" * (hub.settings.max_body_bytes + 1),
                                  headers={"content-type": "application/json"})
    graphiql = await client.get("/graphql", headers={"accept": "text/html"})
    health = await client.get("/healthz")
    assert (refused.status_code, too_large.status_code, graphiql.status_code) == (400, 413, 200)
    assert "graphiql" in graphiql.text.lower()  # the page still loads: no CSP beyond frame-ancestors
    for response in (first, again, refused, too_large, graphiql, health):
        assert_security_headers(response)


async def test_cors_only_for_the_configured_origins(client, hub, monkeypatch):
    preflight = {"origin": "https://shop.example", "access-control-request-method": "POST",
                 "access-control-request-headers": "authorization, content-type"}
    # Default: no origin is allowed to read answers from a browser.
    response = await client.post("/graphql", json={"query": "{ __typename }"}, headers={"origin": "https://shop.example"})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers

    async with edge(hub, monkeypatch, cors_origins="https://shop.example, https://www.shop.example:8443") as web:
        allowed = await web.options("/graphql", headers=preflight)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        denied = await web.options("/graphql", headers={**preflight, "origin": "https://evil.example"})
        assert denied.status_code == 400 and "access-control-allow-origin" not in denied.headers
        simple = await web.post("/graphql", json={"query": "{ __typename }"}, headers={"origin": "https://shop.example"})
        assert simple.headers["access-control-allow-origin"] == "https://shop.example"
        other = await web.post("/graphql", json={"query": "{ __typename }"}, headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        assert_security_headers(simple)


def test_a_malformed_cors_origin_fails_the_start(hub, monkeypatch):
    monkeypatch.setattr(hub, "settings", hub.settings.model_copy(update={"cors_origins": "https://shop.example/path"}))
    with pytest.raises(ValueError, match=r"shop\.example/path"):
        create_app(hub=hub)


async def test_websocket_origins_follow_the_cors_setting(hub, monkeypatch):
    async with served(hub, monkeypatch, cors_origins="https://shop.example") as address:
        url = f"ws://{address}/graphql"
        for origin in ("https://shop.example", None):  # a listed origin; no Origin (not a browser)
            async with websockets.connect(url, subprotocols=["graphql-transport-ws"], origin=origin) as ws:
                await ws.send(json.dumps({"type": "connection_init"}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(url, subprotocols=["graphql-transport-ws"], origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403


# --- Slow and idle connections ----------------------------------------------------------------

async def test_a_slow_body_is_cut_off(hub, monkeypatch):
    monkeypatch.setattr(hub, "settings", hub.settings.model_copy(update={"body_timeout_seconds": 0.2}))
    app = create_app(hub=hub)
    sent: list[dict] = []
    arrived = asyncio.Event()
    stalled = asyncio.Event()

    async def receive() -> dict:
        if not arrived.is_set():
            arrived.set()
            return {"type": "http.request", "body": b'{"query": "{ __typ', "more_body": True}
        await stalled.wait()  # the rest never comes
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/graphql", "raw_path": b"/graphql", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"hub.test"), (b"content-type", b"application/json")],
             "client": ("127.0.0.1", 1), "server": ("hub.test", 80)}
    await asyncio.wait_for(app(scope, receive, send), 10)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 408
    assert json.loads(body)["errors"][0]["extensions"]["code"] == "REQUEST_TIMEOUT"


async def test_a_websocket_that_never_initialises_is_closed(hub, monkeypatch):
    async with served(hub, monkeypatch, ws_init_timeout_seconds=0.3) as address:
        async with websockets.connect(f"ws://{address}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408


def test_the_server_times_out_idle_connections_and_bounds_websocket_messages(monkeypatch):
    import uvicorn as uvicorn_module

    from hub.cli import server as serve_command
    from hub.config import Settings

    seen: dict = {}
    monkeypatch.setattr(uvicorn_module, "run", lambda app, **kwargs: seen.update(kwargs))
    monkeypatch.setattr(serve_command.logging, "basicConfig", lambda **_: None)
    serve_command.serve(host="127.0.0.1", port=0, demo=False, log_level="warning", workers=1)
    settings = Settings()
    assert seen["timeout_keep_alive"] == round(settings.keep_alive_seconds)
    assert seen["ws_max_size"] == settings.max_body_bytes


# --- Every input has a limit -------------------------------------------------------------------

def input_positions() -> dict[str, object]:
    """Every argument and input field of the schema, by coordinate, with its type."""
    found: dict[str, object] = {}
    for typ in schema._schema.type_map.values():
        if typ.name.startswith("__"):
            continue
        if isinstance(typ, GraphQLInputObjectType):
            for name, field in typ.fields.items():
                found[f"{typ.name}.{name}"] = field.type
        for name, field in getattr(typ, "fields", {}).items() if not isinstance(typ, GraphQLInputObjectType) else ():
            for arg_name, arg in field.args.items():
                found[f"{typ.name}.{name}({arg_name}:)"] = arg.type
    return found


def test_every_text_input_states_its_limit():
    positions = input_positions()
    text = {c for c, t in positions.items() if getattr(get_named_type(t), "name", None) == "String"}
    missing = sorted(text - set(inputs.STRING_LIMITS))
    assert not missing, f"give these String inputs a limit in hub.api.inputs.STRING_LIMITS: {missing}"
    unknown = sorted((set(inputs.STRING_LIMITS) | set(inputs.LIST_LIMITS) | {inputs.EVENTS}) - set(positions))
    assert not unknown, f"limits for inputs the schema does not have: {unknown}"
    for coordinate in inputs.LIST_LIMITS:
        typ = positions[coordinate]
        assert isinstance(typ.of_type if isinstance(typ, GraphQLNonNull) else typ, GraphQLList), coordinate
    assert inputs.MAX_CUSTOMERS == MAX_CUSTOMERS


async def test_a_batch_of_operations_is_refused(client, hub):
    before = await customer_count(hub)
    operation = {"query": START, "variables": {"input": {"channel": "WEBSITE",
                                                          "identification": {"email": "batch@example.com"}}}}
    response = await client.post("/graphql", json=[operation, operation])
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BATCHING_NOT_SUPPORTED"
    assert await customer_count(hub) == before
