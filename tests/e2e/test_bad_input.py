"""Bad input gets a GraphQL error with a stable extensions.code, and nothing of that call is recorded."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from hub.store.tables import customers, outbox
from tests.support import RECORD, START, codes, gql, start_contact


async def outbox_count(hub) -> int:
    async with hub.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()


async def customer_count(hub) -> int:
    async with hub.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(customers))).scalar_one()


@pytest.fixture
async def contact(client, hub):
    started = await start_contact(client, email="careful@example.com")
    await hub.settle()  # CM's reaction to the new customer writes to the outbox too: let it land first
    return started


async def offer_id(client) -> str:
    return (await gql(client, "{ offers { id } }"))["offers"][0]["id"]


BAD_EVENTS = [
    ([{"type": "PROPOSITION_SHOWN"}], "BAD_USER_INPUT"),
    ([{"type": "PROPOSITION_RESPONSE", "offerId": "$offer"}], "BAD_USER_INPUT"),
    ([{"type": "PROPOSITION_RESPONSE", "response": "ACCEPTED"}], "BAD_USER_INPUT"),
    ([{"type": "PROPOSITION_SHOWN", "offerId": "no-such-offer"}], "UNKNOWN_OFFER"),
    ([{"type": "INTEREST_SHOWN"}], "BAD_USER_INPUT"),
    ([{"type": "PROPOSITION_SHOWN", "offerId": "$offer", "response": "LATER"}], "BAD_USER_INPUT"),
    ([{"type": "INTEREST_SHOWN", "topic": "x", "occurredAt": "2999-01-01T00:00:00+00:00"}], "BAD_USER_INPUT"),
    # One bad event spoils the whole call: the good one before it is not recorded either.
    ([{"type": "INTEREST_SHOWN", "topic": "savings"}, {"type": "PROPOSITION_SHOWN", "offerId": "nope"}],
     "UNKNOWN_OFFER"),
]


@pytest.mark.parametrize(("events", "code"), BAD_EVENTS)
async def test_bad_events_are_refused_whole(client, hub, contact, events, code):
    offer = await offer_id(client)
    events = [{k: (offer if v == "$offer" else v) for k, v in e.items()} for e in events]
    before = await outbox_count(hub)
    body = await gql(client, RECORD, {"contactId": contact["contact"]["id"], "events": events}, ok=False)
    assert codes(body) == [code], body
    assert body["data"] is None
    assert await outbox_count(hub) == before


async def test_too_many_events(client, hub, contact):
    events = [{"type": "INTEREST_SHOWN", "topic": "savings"}] * (hub.settings.max_events_per_call + 1)
    before = await outbox_count(hub)
    body = await gql(client, RECORD, {"contactId": contact["contact"]["id"], "events": events}, ok=False)
    assert codes(body) == ["TOO_MANY_EVENTS"]
    assert await outbox_count(hub) == before


async def test_unknown_and_ended_contact(client, hub, contact):
    event = [{"type": "INTEREST_SHOWN", "topic": "savings"}]
    body = await gql(client, RECORD, {"contactId": "con_unknown", "events": event}, ok=False)
    assert codes(body) == ["UNKNOWN_CONTACT"]
    await gql(client, 'mutation($id: ID!) { endContact(contactId: $id) { id } }', {"id": contact["contact"]["id"]})
    await hub.settle()
    before = await outbox_count(hub)
    body = await gql(client, RECORD, {"contactId": contact["contact"]["id"], "events": event}, ok=False)
    assert codes(body) == ["CONTACT_ENDED"]
    assert await outbox_count(hub) == before
    body = await gql(client, 'mutation($id: ID!) { endContact(contactId: $id) { id } }',
                     {"id": contact["contact"]["id"]}, ok=False)
    assert codes(body) == ["CONTACT_ENDED"]
    body = await gql(client, 'mutation { endContact(contactId: "con_nope") { id } }', ok=False)
    assert codes(body) == ["UNKNOWN_CONTACT"]


@pytest.mark.parametrize(
    ("identification", "code"),
    [
        ({}, "BAD_USER_INPUT"),
        ({"email": "not-an-email"}, "BAD_USER_INPUT"),
        ({"phone": "12"}, "BAD_USER_INPUT"),
        ({"cookieId": "   "}, "BAD_USER_INPUT"),
    ],
)
async def test_bad_identification_creates_nobody(client, hub, identification, code):
    before = await customer_count(hub)
    body = await gql(client, START, {"input": {"channel": "WEBSITE", "identification": identification}}, ok=False)
    assert codes(body) == [code], body
    assert await customer_count(hub) == before


async def test_unknown_enum_value_and_malformed_documents(client, hub):
    before = await customer_count(hub)
    body = await gql(client, START, {"input": {"channel": "FAX", "identification": {"email": "x@example.com"}}},
                     ok=False)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert "FAX" in body["errors"][0]["message"]
    body = await gql(client, 'mutation { startContact(input: {channel: FAX, identification: {email: "x@e.com"}}) '
                             "{ created } }", ok=False)
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    body = await gql(client, "query { customer(id: ", ok=False)
    assert codes(body) == ["GRAPHQL_PARSE_FAILED"]
    body = await gql(client, "query { nope }", ok=False)
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert await customer_count(hub) == before


async def test_limits_protect_the_hub(client, hub, contact):
    deep = "query { customer(id: \"x\") { contacts { customer { contacts { customer { contacts { customer {" \
           " contacts { customer { contacts { customer { id } } } } } } } } } } } }"
    body = await gql(client, deep, ok=False)
    assert body["errors"] and "depth" in body["errors"][0]["message"]
    body = await gql(client, 'query($id: ID!) { customer(id: $id) { nextBestActions(limit: 1000) { offerId } } }',
                     {"id": contact["customer"]["id"]}, ok=False)
    assert codes(body) == ["BAD_USER_INPUT"]
