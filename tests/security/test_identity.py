"""Identity that cannot be hijacked: a visitor who sends their own cookie id with someone else's email
does not get that person's profile; only a caller with identity:merge links keys across customers;
placeholder values identify no one."""

from __future__ import annotations

from hub.security.scopes import CONTACT_WRITE, CUSTOMER_READ, CUSTOMER_READ_PII, IDENTITY_MERGE
from tests.support import codes, gql

START = """
mutation($i: IdentificationInput!, $c: Channel! = WEBSITE) {
  startContact(input: {channel: $c, identification: $i}) {
    created unlinkedKeys customer { id name emails } contact { id }
  }
}
"""
CHANNEL = frozenset({CONTACT_WRITE, CUSTOMER_READ, CUSTOMER_READ_PII})


async def start(client, **identification):
    return (await gql(client, START, {"i": identification}))["startContact"]


async def test_the_takeover_attempt_gets_nothing_of_the_victim(hub, new_key, caller):
    trusted = await new_key(CHANNEL | {IDENTITY_MERGE})
    website = await new_key(CHANNEL)
    async with caller(trusted) as client:  # the victim, known by email (and a cookie of their own)
        victim = await start(client, email="victim@example.com", cookieId="victim-cookie")
    async with caller(website) as client:
        attacker = await start(client, cookieId="attacker-cookie")
        attempt = await start(client, cookieId="attacker-cookie", email="victim@example.com")
        fresh = await start(client, cookieId="brand-new-cookie", email="victim@example.com")
    assert attempt["customer"]["id"] == attacker["customer"]["id"] != victim["customer"]["id"]
    assert attempt["customer"]["emails"] == []
    assert attempt["unlinkedKeys"] == ["email"]
    # A new cookie with the victim's email: a new (anonymous) customer, not the victim.
    assert fresh["customer"]["id"] not in (victim["customer"]["id"], attacker["customer"]["id"])
    assert fresh["created"] and fresh["unlinkedKeys"] == ["email"] and fresh["customer"]["emails"] == []
    # Nothing was linked: the email still leads to the victim alone, the cookies to their owners.
    async with caller(trusted) as client:
        by_email = await gql(client, '{ customerByKey(email: "victim@example.com") { id } }')
        by_cookie = await gql(client, '{ customerByKey(cookieId: "attacker-cookie") { id emails } }')
    assert by_email["customerByKey"]["id"] == victim["customer"]["id"]
    assert by_cookie["customerByKey"] == {"id": attacker["customer"]["id"], "emails": []}


async def test_a_trusted_caller_links_keys(hub, new_key, caller):
    trusted = await new_key(CHANNEL | {IDENTITY_MERGE})
    async with caller(trusted) as client:
        anonymous = await start(client, cookieId="session-1")
        logged_in = await start(client, cookieId="session-1", email="member@example.com")
    assert logged_in["customer"]["id"] == anonymous["customer"]["id"]
    assert logged_in["unlinkedKeys"] == []
    assert logged_in["customer"]["emails"] == ["member@example.com"]


async def test_keys_all_new_are_linked_for_any_caller(hub, new_key, caller):
    async with caller(await new_key(CHANNEL)) as client:
        first = await start(client, cookieId="c-new", email="new@example.com")
        again = await start(client, cookieId="c-new", email="new@example.com")
    assert first["created"] and first["unlinkedKeys"] == []
    assert again["customer"]["id"] == first["customer"]["id"] and again["unlinkedKeys"] == []


async def test_placeholder_values_identify_no_one(hub, new_key, caller):
    async with caller(await new_key(CHANNEL | {IDENTITY_MERGE})) as client:
        one = await start(client, cookieId="p-1", email="test@test.com")
        two = await start(client, cookieId="p-2", email="TEST@test.com")
        phone = await start(client, cookieId="p-3", phone="0000000000")
        body = await gql(client, START, {"i": {"email": "test@test.com"}}, ok=False)
    assert one["customer"]["id"] != two["customer"]["id"]
    assert one["unlinkedKeys"] == ["email"] and two["unlinkedKeys"] == ["email"]
    assert phone["unlinkedKeys"] == ["phone"]
    assert codes(body) == ["BAD_USER_INPUT"]
