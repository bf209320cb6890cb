"""The contact scenario through HTTP against the ASGI app, on the stack HUB_TEST_STACK names."""

from __future__ import annotations

from hub.demo import load_demo
from tests.support import CUSTOMER, RECORD, START, eventually, gql, start_contact


async def history(client, customer_id: str) -> dict[str, dict]:
    data = await gql(client, CUSTOMER, {"id": customer_id})
    return {h["offerId"]: h for h in data["customer"]["offerHistory"]}


async def test_unknown_visitor_becomes_a_customer_and_is_found_again_by_any_key(client, hub):
    first = await start_contact(client, email="  New.Visitor@Example.COM ", cookieId="ck-1")
    assert first["created"] is True
    assert first["customer"]["emails"] == ["new.visitor@example.com"]
    assert first["contact"]["channel"] == "WEBSITE" and first["contact"]["endedAt"] is None
    assert first["nextBestActions"], "a new customer still gets NBAs"

    # Same person by cookie, now also giving a phone: found, and the phone is linked.
    second = await start_contact(client, "SHOP", cookieId="ck-1", phone="06 1234 9999")
    assert second["created"] is False
    assert second["customer"]["id"] == first["customer"]["id"]
    assert second["contact"]["id"] != first["contact"]["id"]
    assert second["customer"]["phones"] == ["+31612349999"]

    # And by that phone, written differently, alone.
    third = await start_contact(client, "CALLCENTER", phone="+31 6 12349999")
    assert third["customer"]["id"] == first["customer"]["id"]

    by_key = await gql(client, 'query { customerByKey(email: "NEW.visitor@example.com") { id contacts { id } } }')
    assert by_key["customerByKey"]["id"] == first["customer"]["id"]
    assert len(by_key["customerByKey"]["contacts"]) == 3


async def test_events_reach_cm_once_and_rerank_nbas(client, hub):
    await load_demo(hub)
    await hub.settle()  # CM learns the demo customers' attributes from customer.created events
    start = await start_contact(client, email="anna.devries@example.com")
    assert start["created"] is False and start["customer"]["name"] == "Anna de Vries"
    assert {s["id"] for s in start["customer"]["segments"]} >= {"gold-tier"}
    top = start["nextBestActions"][0]
    assert top["decisionId"].startswith("dec_") and top["reason"]

    contact_id, customer_id = start["contact"]["id"], start["customer"]["id"]
    recorded = (
        await gql(client, RECORD, {"contactId": contact_id, "events": [
            {"type": "PROPOSITION_SHOWN", "offerId": top["offerId"], "decisionId": top["decisionId"]},
            {"type": "PROPOSITION_RESPONSE", "offerId": top["offerId"], "response": "REJECTED"},
        ]})
    )["recordContactEvents"]
    assert recorded["accepted"] == 2 and len(set(recorded["eventIds"])) == 2
    # The answer already reflects the rejection: the offer is suppressed.
    assert top["offerId"] not in [n["offerId"] for n in recorded["nextBestActions"]]

    await hub.settle()
    h = await history(client, customer_id)
    assert h[top["offerId"]]["shown"] == 1 and h[top["offerId"]]["rejected"] == 1
    assert h[top["offerId"]]["lastShownAt"] is not None
    data = await gql(client, CUSTOMER, {"id": customer_id})
    assert top["offerId"] not in [n["offerId"] for n in data["customer"]["nextBestActions"]]


async def test_interest_raises_offers_of_that_topic(client, hub):
    start = await start_contact(client, email="mortgage.fan@example.com")
    before = {n["offerId"]: n["score"] for n in start["nextBestActions"]}
    offers = (await gql(client, "{ offers { id topics channels } }"))["offers"]
    mortgage = [o["id"] for o in offers if "mortgage" in o["topics"] and "WEBSITE" in o["channels"]]
    assert mortgage, "the demo catalog has a mortgage offer on the website"
    recorded = (await gql(client, RECORD, {"contactId": start["contact"]["id"], "events": [
        {"type": "INTEREST_SHOWN", "topic": "mortgage"}, {"type": "INTEREST_SHOWN", "topic": "mortgage"},
        {"type": "BANNER_CLICK", "topic": "mortgage"},
    ]}))["recordContactEvents"]
    after = {n["offerId"]: n["score"] for n in recorded["nextBestActions"]}
    raised = [o for o in mortgage if o in after]
    assert raised, f"a mortgage offer is among the NBAs after interest: {after}"
    assert all(after[o] > before.get(o, 0) for o in raised)


async def test_accepted_offer_is_removed_and_counted(client, hub):
    start = await start_contact(client, email="buyer@example.com")
    offer = start["nextBestActions"][0]["offerId"]
    await gql(client, RECORD, {"contactId": start["contact"]["id"], "events": [
        {"type": "PROPOSITION_SHOWN", "offerId": offer},
        {"type": "PROPOSITION_RESPONSE", "offerId": offer, "response": "ACCEPTED"},
    ]})
    await hub.settle()
    h = await eventually(lambda: history(client, start["customer"]["id"]))
    assert h[offer]["accepted"] == 1 and h[offer]["shown"] == 1
    again = await start_contact(client, "EMAIL", email="buyer@example.com")
    assert offer not in [n["offerId"] for n in again["nextBestActions"]]


async def test_end_contact_records_outcome(client, hub):
    start = await start_contact(client, email="leaver@example.com")
    ended = await gql(client, 'mutation($id: ID!) { endContact(contactId: $id, outcome: "resolved") '
                              "{ id endedAt outcome } }", {"id": start["contact"]["id"]})
    assert ended["endContact"]["endedAt"] is not None and ended["endContact"]["outcome"] == "resolved"


async def test_customer_query_batches_and_unknown_is_null(client, hub):
    a = await start_contact(client, email="a@example.com")
    b = await start_contact(client, email="b@example.com")
    calls: list[list[str]] = []
    crm = hub.systems.all("profile_source")["crm"]
    original = crm.fetch

    async def counting(ids):
        calls.append(list(ids))
        return await original(ids)

    crm.fetch = counting  # observe, not replace: the real CRM still answers
    hub.cache.invalidate([a["customer"]["id"], b["customer"]["id"]], ["crm", "cm"])
    data = await gql(client, """query($a: ID!, $b: ID!) {
        x: customer(id: $a) { name emails } y: customer(id: $b) { emails } z: customer(id: "cus_nope") { id } }""",
                     {"a": a["customer"]["id"], "b": b["customer"]["id"]})
    assert data["x"]["emails"] == ["a@example.com"] and data["y"]["emails"] == ["b@example.com"]
    assert data["z"] is None
    assert len(calls) == 1 and sorted(calls[0]) == sorted([a["customer"]["id"], b["customer"]["id"]])

    # Cached now: a second query reads no system.
    await gql(client, 'query($a: ID!) { customer(id: $a) { name } }', {"a": a["customer"]["id"]})
    assert len(calls) == 1


async def test_graphql_get_and_graphiql(client, hub):
    r = await client.get("/graphql", params={"query": "{ offers { id } }"})
    assert r.status_code == 200 and r.json()["data"]["offers"]
    r = await client.get("/graphql", headers={"accept": "text/html"})
    assert r.status_code == 200 and "graphiql" in r.text.lower()
    # Mutations are not allowed over GET.
    r = await client.get("/graphql", params={"query": "mutation { endContact(contactId: \"x\") { id } }"})
    assert r.status_code in (400, 405)


async def test_a_failing_system_gives_partial_data_and_an_error_naming_it(client, hub):
    start = (await gql(client, START, {"input": {"channel": "WEBSITE", "name": "Pat",
                                                 "identification": {"email": "partial@example.com"}}}))["startContact"]
    cm = hub.systems.all("profile_source")["cm"]
    hub.cache.invalidate([start["customer"]["id"]], ["crm", "cm"])

    async def down(ids):
        raise ConnectionError("cm is down")

    cm.fetch = down  # the CM system is unreachable; the CRM still answers
    body = await gql(client, 'query($id: ID!) { customer(id: $id) { name emails unavailableSystems segments { id } } }',
                     {"id": start["customer"]["id"]}, ok=False)
    assert body["data"]["customer"] == {"name": "Pat", "emails": ["partial@example.com"],
                                        "unavailableSystems": ["cm"], "segments": []}
    assert [(e["extensions"]["code"], e["extensions"]["system"], e["path"]) for e in body["errors"]] == [
        ("SYSTEM_UNAVAILABLE", "cm", ["customer"])]


async def test_unexpected_errors_are_masked_and_coded(client, hub, caplog):
    start = await start_contact(client, email="oops@example.com")

    async def broken(*args, **kwargs):
        raise RuntimeError("password=hunter2 in a stack trace")

    hub.decisions.decide = broken
    body = await gql(client, 'query($id: ID!) { customer(id: $id) { name nextBestActions { offerId } } }',
                     {"id": start["customer"]["id"]}, ok=False)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["INTERNAL"]
    assert "hunter2" not in str(body)
    assert "hunter2" in caplog.text  # operators still see it


# The shipped mapping's default actions (mappings/hub.yaml `decisions.fallback`), in priority order.
DEFAULT_ACTIONS = ["savings-plus", "app-download"]
FALLBACK_IDS = [f"fallback:{o}" for o in DEFAULT_ACTIONS]


async def test_a_failing_decision_engine_gives_partial_data_naming_it(client, hub, caplog):
    """CM down: contacts still start, events are still recorded, the view still answers; the NBAs are
    the mapping's default actions, marked fallback, with a SYSTEM_UNAVAILABLE error naming CM beside the
    data, never INTERNAL."""
    cm = hub.systems.one("decision_engine")
    real_decide = cm.decide

    async def down(requests, pending=()):
        raise ConnectionError("cm at 10.0.0.7:5432 refused password=hunter2")

    cm.decide = down
    start = START.replace("decisionId }", "decisionId fallback }")
    body = await gql(client, start, {"input": {"channel": "WEBSITE", "identification": {"email": "nba@example.com"}}},
                     ok=False)
    started = body["data"]["startContact"]
    assert started["contact"]["id"]
    nbas = started["nextBestActions"]
    assert [n["offerId"] for n in nbas] == DEFAULT_ACTIONS
    assert [n["decisionId"] for n in nbas] == FALLBACK_IDS
    assert all(n["fallback"] is True and n["channel"] == "WEBSITE" and n["score"] == 0 for n in nbas)
    assert all("'cm' is unavailable" in n["reason"] for n in nbas)
    assert [(e["extensions"]["code"], e["extensions"]["system"], e["path"]) for e in body["errors"]] == [
        ("SYSTEM_UNAVAILABLE", "cm", ["startContact", "nextBestActions"])]
    assert "hunter2" not in str(body) and "10.0.0.7" not in str(body)
    assert "hunter2" in caplog.text  # the log has it whole

    recorded = await gql(client, RECORD, {"contactId": started["contact"]["id"],
                                          "events": [{"type": "INTEREST_SHOWN", "topic": "mortgage"}]}, ok=False)
    assert recorded["data"]["recordContactEvents"]["accepted"] == 1
    assert [e["extensions"]["code"] for e in recorded["errors"]] == ["SYSTEM_UNAVAILABLE"]

    # Two customers' NBAs in one request are one decision call (batched), and both are partial.
    calls: list[int] = []

    async def counting(requests, pending=()):
        calls.append(len(requests))
        raise TimeoutError

    cm.decide = counting
    other = (await gql(client, START, {"input": {"channel": "EMAIL", "identification": {"email": "nba2@example.com"}}},
                        ok=False))["data"]["startContact"]
    calls.clear()
    query = 'query($a: ID!, $b: ID!) { a: customer(id: $a) { name nextBestActions { offerId } } ' \
            'b: customer(id: $b) { nextBestActions(channel: EMAIL) { offerId } } }'
    body = await gql(client, query, {"a": started["customer"]["id"], "b": other["customer"]["id"]}, ok=False)
    assert calls == [2]
    assert [n["offerId"] for n in body["data"]["a"]["nextBestActions"]] == DEFAULT_ACTIONS
    assert [n["offerId"] for n in body["data"]["b"]["nextBestActions"]] == DEFAULT_ACTIONS
    assert sorted((e["extensions"]["code"], e["path"]) for e in body["errors"]) == [
        ("SYSTEM_UNAVAILABLE", ["a", "nextBestActions"]), ("SYSTEM_UNAVAILABLE", ["b", "nextBestActions"])]

    cm.decide = real_decide
    body = await gql(client, query.replace("offerId", "offerId fallback"),
                     {"a": started["customer"]["id"], "b": other["customer"]["id"]})
    assert body["a"]["nextBestActions"]
    assert not any(n["fallback"] for n in body["a"]["nextBestActions"] + body["b"]["nextBestActions"])


async def test_the_view_carries_the_newest_contacts_from_the_hub(client, hub):
    first = await start_contact(client, email="many@example.com")
    ids = [first["contact"]["id"]]
    for _ in range(24):
        ids.append((await start_contact(client, email="many@example.com"))["contact"]["id"])
    data = await gql(client, 'query($id: ID!) { customer(id: $id) { contacts { id } sources { field system } } }',
                     {"id": first["customer"]["id"]})
    shown = [c["id"] for c in data["customer"]["contacts"]]
    assert shown == list(reversed(ids))[:20]  # newest first, at most 20
    assert {"field": "contacts", "system": "hub"} in data["customer"]["sources"]


async def test_a_key_unknown_a_moment_ago_finds_the_customer_made_since(client, hub):
    query = 'query($e: String!) { customerByKey(email: $e) { id } }'
    assert (await gql(client, query, {"e": "later@example.com"}))["customerByKey"] is None
    started = await start_contact(client, email="later@example.com")
    for _ in range(2):  # the second answer comes from the hub's memory of keys, and agrees
        found = await gql(client, query, {"e": "later@example.com"})
        assert found["customerByKey"]["id"] == started["customer"]["id"]
