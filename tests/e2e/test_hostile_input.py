"""Hostile input gets a clean answer: a 4xx or a coded GraphQL error, nothing recorded, the hub unharmed,
on both stores and both transports (issue 9, "Hostile input gets a clean answer")."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import websockets
from sqlalchemy import func, select
from websockets.exceptions import ConnectionClosed

from hub.api.app import create_app
from hub.model.customer import GOLDEN_ID_PREFIX
from hub.ports import Health
from hub.store.tables import customers, outbox
from tests.support import RECORD, START, codes, gql, serving, start_contact

STARTS = 'mutation { startContact(input: {channel: WEBSITE, identification: {email: "hostile@example.com"}}) { created } }'
START_VARS = "mutation($i: StartContactInput!) { startContact(input: $i) { created customer { id } } }"


async def counts(hub) -> tuple[int, int]:
    async with hub.engine.connect() as conn:
        people = (await conn.execute(select(func.count()).select_from(customers))).scalar_one()
        events = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    return people, events


def error_code(response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    return response.json()["errors"][0]["extensions"]["code"]


# --- Request bodies that are not one GraphQL operation ---------------------------------------------

NESTED = b'{"query": "query($v: [ID!]) { customers(ids: $v) { id } }", "variables": {"v": ' + b"[" * 100_000 + (
    b"]" * 100_000
) + b"}}"
BODIES = [
    pytest.param(b"[]", "application/json", 400, "BATCHING_NOT_SUPPORTED", id="empty-array"),
    pytest.param(b"1", "application/json", 400, "BAD_REQUEST", id="number"),
    pytest.param(b'"x"', "application/json", 400, "BAD_REQUEST", id="string"),
    pytest.param(b"null", "application/json", 400, "BAD_REQUEST", id="null"),
    pytest.param(b"true", "application/json", 400, "BAD_REQUEST", id="boolean"),
    pytest.param(b"{}", "application/json", 400, "BAD_REQUEST", id="no-query"),
    pytest.param(b"", "application/json", 400, "BAD_REQUEST", id="empty"),
    pytest.param(b"{not json", "application/json", 400, "BAD_REQUEST", id="not-json"),
    pytest.param(b'{"query": "{ __typename }", "x": NaN}', "application/json", 400, "BAD_REQUEST", id="nan"),
    pytest.param(b'{"query": "\xff\xfe{ __typename }"}', "application/json", 400, "BAD_REQUEST", id="bad-utf8"),
    pytest.param(b'{"query": "\\ud800"}', "application/json", 400, "BAD_REQUEST", id="lone-surrogate"),
    pytest.param(NESTED, "application/json", 400, "BAD_REQUEST", id="nested-100k"),
    pytest.param(json.dumps({"query": STARTS}).encode(), "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE", id="text"),
    pytest.param(b"query=" + STARTS.encode(), "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE",
                 id="form"),
    pytest.param(json.dumps({"query": STARTS}).encode(), "multipart/form-data; boundary=x", 415,
                 "UNSUPPORTED_MEDIA_TYPE", id="multipart"),
    pytest.param(json.dumps({"query": STARTS}).encode(), "application/jsonx", 415, "UNSUPPORTED_MEDIA_TYPE",
                 id="not-quite-json"),
    pytest.param(json.dumps({"query": STARTS, "variables": [1]}).encode(), "application/json", 400, "BAD_REQUEST",
                 id="variables-list"),
    pytest.param(json.dumps({"query": STARTS, "variables": "{}"}).encode(), "application/json", 400,
                 "BAD_REQUEST", id="variables-string"),
    pytest.param(json.dumps({"query": 1}).encode(), "application/json", 400, "BAD_REQUEST", id="query-number"),
    pytest.param(json.dumps({"query": [STARTS]}).encode(), "application/json", 400, "BAD_REQUEST",
                 id="query-list"),
    pytest.param(json.dumps({"query": STARTS, "operationName": 5}).encode(), "application/json", 400,
                 "BAD_REQUEST", id="operation-name-number"),
    pytest.param(json.dumps({"query": STARTS, "extensions": []}).encode(), "application/json", 400,
                 "BAD_REQUEST", id="extensions-list"),
    pytest.param(json.dumps([{"query": STARTS}, {"query": STARTS}]).encode(), "application/json", 400,
                 "BATCHING_NOT_SUPPORTED", id="batch"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code"), BODIES)
async def test_bodies_that_are_not_one_operation_are_refused_cleanly(client, hub, body, content_type, status,
                                                                    code):
    before = await counts(hub)
    response = await client.post("/graphql", content=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text[:300]
    assert error_code(response) == code
    assert await counts(hub) == before
    assert (await gql(client, "{ __typename }"))["__typename"] == "Query"  # the hub is unharmed


async def test_query_strings_that_are_not_one_operation(client, hub):
    before = await counts(hub)
    cases = [
        ({"query": "query($v: [ID!]) { customers(ids: $v) { id } }", "variables": "{nope"}, 400, "BAD_REQUEST"),
        ({"query": "query($v: [ID!]) { customers(ids: $v) { id } }", "variables": "[" * 5000 + "]" * 5000}, 400,
         "BAD_REQUEST"),
        ({"query": "{ __typename }", "variables": "[]"}, 400, "BAD_REQUEST"),
        ({"query": STARTS}, 405, "METHOD_NOT_ALLOWED"),  # a mutation needs POST
        ({"variables": "{}"}, 400, "BAD_REQUEST"),  # no document (and no browser asking for GraphiQL)
    ]
    for params, status, code in cases:
        response = await client.get("/graphql", params=params, headers={"accept": "application/json"})
        assert response.status_code == status, (params, response.text[:300])
        assert error_code(response) == code
        if status == 405:
            assert response.headers["allow"] == "POST"
    assert await counts(hub) == before


async def test_a_subscription_over_http_is_refused(client, hub):
    started = await start_contact(client, email="sub.http@example.com")
    query = "subscription($id: ID!) { nextBestActions(customerId: $id) { offerId } }"
    response = await client.post("/graphql", json={"query": query, "variables": {"id": started["customer"]["id"]}})
    assert response.status_code == 400 and error_code(response) == "BAD_REQUEST"
    assert "websocket" in response.json()["errors"][0]["message"]
    response = await client.get("/graphql", params={"query": query}, headers={"accept": "application/json"})
    assert response.status_code == 400 and error_code(response) == "BAD_REQUEST"


async def test_two_operations_need_an_operation_name(client, hub):
    document = (
        'mutation A { startContact(input: {channel: WEBSITE, identification: {email: "a.two@example.com"}}) '
        "{ created } } "
        'mutation B { startContact(input: {channel: WEBSITE, identification: {email: "b.two@example.com"}}) '
        "{ created } }"
    )
    before = await counts(hub)
    body = await gql(client, document, ok=False)
    assert codes(body) == ["BAD_REQUEST"] and body["data"] is None
    assert await counts(hub) == before  # not the first one run
    response = await client.post("/graphql", json={"query": document, "operationName": "C"})
    assert response.status_code == 400 and error_code(response) == "BAD_REQUEST"
    response = await client.post("/graphql", json={"query": document, "operationName": "B"})
    assert response.json() == {"data": {"startContact": {"created": True}}}
    assert (await counts(hub))[0] == before[0] + 1


# --- Strings: the same refusal on every store --------------------------------------------------------

@pytest.mark.parametrize(
    ("identification", "name", "field"),
    [
        ({"cookieId": "abc\x00def"}, None, "i.identification.cookieId"),
        ({"email": "nul\x00@example.com"}, None, "i.identification.email"),
        ({"customerNumber": "12\x0045"}, None, "i.identification.customerNumber"),
        ({"cookieId": "fine"}, "Anna\x00", "i.name"),
        ({"cookieId": "fine"}, "Anna\x1b[31m", "i.name"),
        ({"cookieId": "fine"}, "Anna\x7f", "i.name"),
        ({"cookieId": "x" * 201}, None, "i.identification.cookieId"),
        ({"email": "e" * 300 + "@example.com"}, None, "i.identification.email"),
        ({"cookieId": "fine"}, "N" * 100_000, "i.name"),
    ],
)
async def test_strings_are_checked_before_any_store_sees_them(client, hub, identification, name, field):
    before = await counts(hub)
    variables = {"i": {"channel": "WEBSITE", "identification": identification, "name": name}}
    body = await gql(client, START_VARS, variables, ok=False)
    assert codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["extensions"]["field"] == field
    assert len(body["errors"][0]["message"]) <= 400
    assert await counts(hub) == before


async def test_strings_in_the_document_and_in_queries_are_checked_too(client, hub):
    before = await counts(hub)
    literal = ('mutation { startContact(input: {channel: WEBSITE, identification: {cookieId: "a\\u0000b"}}) '
               "{ created } }")
    body = await gql(client, literal, ok=False)
    assert codes(body) == ["BAD_USER_INPUT"] and body["errors"][0]["extensions"]["field"] == "input.identification.cookieId"
    body = await gql(client, 'query { customer(id: "cus_\\u0000") { id } }', ok=False)
    assert codes(body) == ["BAD_USER_INPUT"]
    body = await gql(client, "query($id: ID!) { customer(id: $id) { id } }", {"id": "cus_\x00"}, ok=False)
    assert codes(body) == ["BAD_USER_INPUT"] and body["errors"][0]["extensions"]["field"] == "id"
    body = await gql(client, "query($e: String) { customerByKey(email: $e) { id } }", {"e": "a@b.c" * 100},
                     ok=False)
    assert codes(body) == ["BAD_USER_INPUT"] and body["errors"][0]["extensions"]["field"] == "e"
    assert await counts(hub) == before


async def test_allowed_whitespace_and_long_but_fitting_text_are_stored(client, hub):
    data = await gql(client, START_VARS, {"i": {"channel": "WEBSITE", "identification": {"cookieId": "c-ok"},
                                                "name": "Anna\tde Vries"}})
    assert data["startContact"]["created"] is True
    contact = await start_contact(client, email="long.outcome@example.com")
    outcome = "o" * 200
    ended = await gql(client, "mutation($id: ID!, $o: String) { endContact(contactId: $id, outcome: $o) { outcome } }",
                      {"id": contact["contact"]["id"], "o": outcome})
    assert ended["endContact"]["outcome"] == outcome
    body = await gql(client, "mutation($id: ID!, $o: String) { endContact(contactId: $id, outcome: $o) { outcome } }",
                     {"id": contact["contact"]["id"], "o": "o" * 201}, ok=False)
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_event_topics_and_request_texts_fit_their_columns(client, hub):
    contact = await start_contact(client, email="columns@example.com")
    await hub.settle()
    before = await counts(hub)
    for event in ({"type": "INTEREST_SHOWN", "topic": "t" * 101}, {"type": "INTEREST_SHOWN", "topic": "sav\x00ings"},
                  {"type": "INTEREST_SHOWN", "topic": "savings", "decisionId": "d\x00"}):
        body = await gql(client, RECORD, {"contactId": contact["contact"]["id"], "events": [event]}, ok=False)
        assert codes(body) == ["BAD_USER_INPUT"], body
        assert body["errors"][0]["extensions"]["field"].startswith("events[0].")
    submit = "mutation($i: SubmitRequestInput!) { submitRequest(input: $i) { id } }"
    for payload in ({"subject": "s\x00"}, {"subject": "ok", "details": "d" * 4001}, {"subject": "ok", "details": "\x00"}):
        body = await gql(client, submit, {"i": {"contactId": contact["contact"]["id"], "kind": "QUOTE", **payload}},
                         ok=False)
        assert codes(body) == ["BAD_USER_INPUT"], body
    assert await counts(hub) == before


# --- Huge lists: refused by size before conversion, while others are served ----------------------------

@pytest.fixture
def hub_settings(hub_settings):
    # Room for the huge lists below (a million ids is 2 MB); the rest of the suite keeps 1 MB.
    return hub_settings.model_copy(update={"max_body_bytes": 8 * 1024 * 1024})


async def test_huge_lists_are_refused_before_they_are_converted(client, hub):
    contact = await start_contact(client, email="huge.lists@example.com")
    await hub.settle()
    before = await counts(hub)
    ids = [1] * 1_000_000
    huge_ids = client.post("/graphql", json={"query": "query($ids: [ID!]!) { customers(ids: $ids) { id } }",
                                              "variables": {"ids": ids}})
    huge_events = client.post("/graphql", json={"query": RECORD, "variables": {
        "contactId": contact["contact"]["id"], "events": [{}] * 1_000_000}})
    small = gql(client, "{ offers { id } }")
    ids_answer, events_answer, small_answer = await asyncio.gather(huge_ids, huge_events, small)
    assert codes(ids_answer.json()) == ["BAD_USER_INPUT"]
    assert ids_answer.json()["errors"][0]["extensions"]["field"] == "ids"
    assert codes(events_answer.json()) == ["TOO_MANY_EVENTS"]
    assert small_answer["offers"]  # another caller was answered meanwhile
    launch = "mutation($i: LaunchCampaignInput!) { launchCampaign(input: $i) { id } }"
    body = await gql(client, launch, {"i": {"offerId": "x", "customerIds": ["cus_1"] * 10_001}}, ok=False)
    assert codes(body) == ["BAD_USER_INPUT"] and body["errors"][0]["extensions"]["field"] == "i.customerIds"
    assert await counts(hub) == before


async def test_a_literal_list_in_the_document_is_held_to_the_same_limit(client, hub):
    ids = ", ".join(f'"cus_{n:x}"' for n in range(101))
    body = await gql(client, f"query {{ customers(ids: [{ids}]) {{ id }} }}", ok=False)
    assert codes(body) == ["BAD_USER_INPUT"] and body["errors"][0]["extensions"]["field"] == "ids"


# --- What callers read, and what the log keeps --------------------------------------------------------

async def test_huge_invalid_values_are_not_echoed_whole(client, hub):
    body = await gql(client, START_VARS, {"i": {"channel": "F" * 3000, "identification": {"cookieId": "c"}}},
                     ok=False)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert len(body["errors"][0]["message"]) <= 400 and "F" * 61 not in body["errors"][0]["message"]
    body = await gql(client, START_VARS, {"i": {"channel": "WEBSITE", "identification": {"email": "x" * 250}}},
                     ok=False)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert "x" * 61 not in body["errors"][0]["message"]


async def test_caller_errors_are_logged_briefly_not_as_errors(client, hub, caplog):
    caplog.set_level(logging.INFO)
    body = await gql(client, START_VARS, {"i": {"channel": "WEBSITE", "identification": {"email": "nope" * 50}}},
                     ok=False)
    assert codes(body) == ["BAD_USER_INPUT"]
    await gql(client, "query { nope }", ok=False)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    refused = [r for r in caplog.records if r.getMessage().startswith("refused (")]
    assert refused and all(r.exc_info is None and len(r.getMessage()) < 300 for r in refused)


async def test_failures_tell_no_sql_parameters_or_paths(client, hub, monkeypatch, caplog):
    leak = ("(sqlite3.OperationalError) no such table: offers\n[SQL: SELECT * FROM offers WHERE email = ?]\n"
            "[parameters: ('anna@example.com',)]\n(Background on this error at: https://sqlalche.me/e/20/e3q8)")
    adapter = hub.systems.adapters["cm"]

    async def failing_check():
        return Health(False, f"{leak} in /srv/hub/adapters/cm/adapter.py")

    monkeypatch.setattr(adapter, "check", failing_check)
    response = await client.get("/healthz")
    text = response.text
    for secret in ("SELECT", "anna@example.com", "parameters", "/srv/hub", "Background"):
        assert secret not in text, text
    assert response.json()["systems"]["cm"]["ok"] is False

    async def broken_offers():
        raise RuntimeError(f"{leak} at /srv/hub/hub/core/decisions.py line 3")

    monkeypatch.setattr(hub.wiring.decisions, "offers", broken_offers)
    with caplog.at_level(logging.ERROR):
        body = await gql(client, "{ offers { id } }", ok=False)
    assert codes(body) == ["INTERNAL"]
    assert "SELECT" not in json.dumps(body) and "anna" not in json.dumps(body)
    # The relay clears its error each round: held at the leak while the query runs.
    monkeypatch.setattr(type(hub.relay), "last_error", property(lambda _: leak, lambda _, value: None), raising=False)
    data = await gql(client, "{ operations { relayError } }")
    assert "SELECT" not in data["operations"]["relayError"] and "anna" not in data["operations"]["relayError"]


# --- The customer's id where an id is asked for -----------------------------------------------------

async def test_the_golden_id_identifies_its_customer_and_never_makes_a_new_one(client, hub):
    first = await start_contact(client, email="golden@example.com")
    golden = first["customer"]["id"]
    assert golden.startswith(GOLDEN_ID_PREFIX)
    before = await counts(hub)
    again = await start_contact(client, customerId=golden)
    assert (again["created"], again["customer"]["id"]) == (False, golden)
    assert (await counts(hub))[0] == before[0]

    unknown = f"{GOLDEN_ID_PREFIX}{'0' * 20}"
    body = await gql(client, START, {"input": {"channel": "WEBSITE", "identification": {"customerId": unknown}}},
                     ok=False)
    assert codes(body) == ["UNKNOWN_CUSTOMER"] and body["errors"][0]["extensions"]["field"] == "identification.customerId"
    assert (await counts(hub))[0] == before[0]

    numbered = await start_contact(client, customerNumber="C-1001")
    assert numbered["created"] is True
    by_old_name = await start_contact(client, customerId="C-1001")  # deprecated, still the number
    assert (by_old_name["created"], by_old_name["customer"]["id"]) == (False, numbered["customer"]["id"])
    found = await gql(client, "{ customerByKey(customerNumber: \"C-1001\") { id } }")
    assert found["customerByKey"]["id"] == numbered["customer"]["id"]


async def test_the_sdl_names_the_number_and_deprecates_the_old_name(client):
    body = await gql(client, '{ __type(name: "IdentificationInput") { inputFields(includeDeprecated: true) '
                             "{ name isDeprecated } } }")
    fields = {f["name"]: f["isDeprecated"] for f in body["__type"]["inputFields"]}
    assert fields["customerNumber"] is False and fields["customerId"] is True


# --- The websocket: the same rules, and every error coded -----------------------------------------

@pytest.fixture
async def ws_url(hub):
    async with serving(create_app(hub=hub)) as address:
        yield f"ws://{address}/graphql"


async def receive(ws, timeout: float = 10.0) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message["type"] not in ("ping", "pong"):
            return message


async def connected(url):
    ws = await websockets.connect(url, subprotocols=["graphql-transport-ws"], max_size=None)
    await ws.send(json.dumps({"type": "connection_init"}))
    assert (await receive(ws))["type"] == "connection_ack"
    return ws


@pytest.mark.parametrize(
    "message",
    [
        "[]",
        "1",
        "not json",
        "[" * 5000 + "]" * 5000,
        json.dumps({"type": 5}),
        json.dumps({"type": "subscribe", "id": "1", "payload": []}),
        json.dumps({"type": "subscribe", "id": "1", "payload": {"query": 1}}),
        json.dumps({"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }", "variables": [1]}}),
        json.dumps({"type": "subscribe", "id": 7, "payload": {"query": "{ __typename }"}}),
        json.dumps({"type": "subscribe", "payload": {"query": "{ __typename }"}}),
    ],
)
async def test_invalid_websocket_messages_close_with_4400(ws_url, message):
    ws = await connected(ws_url)
    try:
        await ws.send(message)
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    finally:
        await ws.close()
    ws = await connected(ws_url)  # the hub still answers
    await ws.close()


async def test_errors_over_the_websocket_carry_codes(ws_url, client, hub):
    started = await start_contact(client, email="ws.codes@example.com")
    await hub.settle()
    before = await counts(hub)
    ws = await connected(ws_url)
    try:
        cases = [
            ({"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED"),
            ({"query": "query($id: ID!) { customer(id: $id) { id } }", "variables": {"id": "a\x00"}}, "BAD_USER_INPUT"),
            ({"query": "query A { __typename } query B { __typename }"}, "BAD_REQUEST"),
            ({"query": RECORD, "variables": {"contactId": started["contact"]["id"], "events": [{}] * 5000}},
             "TOO_MANY_EVENTS"),
            ({"query": "subscription { nextBestActions(customerId: \"cus_00\") { offerId } }"}, "NOT_FOUND"),
            ({"query": "query { customer(id: \"x\") { contacts { customer { contacts { customer { contacts { customer"
                       " { contacts { customer { contacts { customer { id } } } } } } } } } } } }"}, "QUERY_TOO_DEEP"),
        ]
        for n, (payload, code) in enumerate(cases):
            await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": payload}))
            message = await receive(ws)
            assert message["id"] == str(n) and message["type"] in ("error", "next"), message
            errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
            assert [e["extensions"]["code"] for e in errors][:1] == [code], message
            if message["type"] == "next":
                assert (await receive(ws))["type"] == "complete"
    finally:
        await ws.close()
    assert await counts(hub) == before
