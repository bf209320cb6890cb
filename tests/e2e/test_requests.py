"""Customer requests (scenario steps 2 and 4): taken in during a contact, stored by the CRM, handed to the
back office, moved along the allowed transitions only, reported to CM by the daily flow."""

from __future__ import annotations

from tests.support import codes, gql, start_contact

REQUEST_FIELDS = "id kind subject details status contactId customerId history { status at by note }"
SUBMIT = f"""mutation($input: SubmitRequestInput!) {{ submitRequest(input: $input) {{ {REQUEST_FIELDS} }} }}"""
UPDATE = f"""mutation($id: ID!, $status: RequestStatus!, $note: String) {{
  updateRequestStatus(id: $id, status: $status, note: $note) {{ {REQUEST_FIELDS} }} }}"""
GET = f"query($id: ID!) {{ request(id: $id) {{ {REQUEST_FIELDS} }} }}"
OF_CUSTOMER = """query($id: ID!, $status: RequestStatus) { customer(id: $id) {
  requests(status: $status) { id status } segments { id } } }"""


async def submit(client, contact_id: str, kind: str, subject: str = "A quote for a mortgage", **more):
    data = await gql(client, SUBMIT, {"input": {"contactId": contact_id, "kind": kind, "subject": subject, **more}})
    return data["submitRequest"]


async def test_a_request_is_stored_open_with_its_contact_and_customer(client, hub):
    start = await start_contact(client, email="quote.asker@example.com")
    contact_id, customer_id = start["contact"]["id"], start["customer"]["id"]
    request = await submit(client, contact_id, "QUOTE", details="30 years, fixed rate")
    assert request["id"].startswith("req_")
    assert (request["kind"], request["status"]) == ("QUOTE", "OPEN")
    assert (request["contactId"], request["customerId"]) == (contact_id, customer_id)
    assert request["details"] == "30 years, fixed rate"
    assert [(h["status"], h["by"]) for h in request["history"]] == [("OPEN", "WEBSITE")]

    assert (await gql(client, GET, {"id": request["id"]}))["request"] == request
    listed = (await gql(client, OF_CUSTOMER, {"id": customer_id}))["customer"]["requests"]
    assert listed == [{"id": request["id"], "status": "OPEN"}]
    only_done = await gql(client, OF_CUSTOMER, {"id": customer_id, "status": "COMPLETED"})
    assert only_done["customer"]["requests"] == []


async def test_an_automatic_kind_is_completed_straight_through(client, hub):
    start = await start_contact(client, "CALLCENTER", email="service.asker@example.com")
    # mappings/hub.yaml: the built-in back office settles SERVICE requests without a person.
    request = await submit(client, start["contact"]["id"], "SERVICE", subject="Send a new debit card")
    assert request["status"] == "COMPLETED"
    assert [(h["status"], h["by"]) for h in request["history"]] == [
        ("OPEN", "CALLCENTER"), ("COMPLETED", "backoffice"),
    ]
    assert (await gql(client, GET, {"id": request["id"]}))["request"]["status"] == "COMPLETED"


async def test_the_back_office_moves_a_request_along_allowed_transitions_only(client, hub):
    start = await start_contact(client, email="moved.along@example.com")
    request = await submit(client, start["contact"]["id"], "QUOTE")
    for status, note in [("IN_PROGRESS", None), ("WAITING_FOR_CUSTOMER", "need an income statement"),
                         ("IN_PROGRESS", None), ("COMPLETED", "quote sent")]:
        moved = (await gql(client, UPDATE, {"id": request["id"], "status": status, "note": note}))
        assert moved["updateRequestStatus"]["status"] == status
    done = (await gql(client, GET, {"id": request["id"]}))["request"]
    assert [h["status"] for h in done["history"]] == [
        "OPEN", "IN_PROGRESS", "WAITING_FOR_CUSTOMER", "IN_PROGRESS", "COMPLETED",
    ]
    assert done["history"][2]["note"] == "need an income statement"
    assert done["history"][-1]["by"] == "backoffice"

    # Closed is closed: a forbidden move is a coded error and changes nothing.
    for status in ("IN_PROGRESS", "OPEN", "COMPLETED", "CANCELLED"):
        body = await gql(client, UPDATE, {"id": request["id"], "status": status}, ok=False)
        assert codes(body) == ["INVALID_TRANSITION"], body
        assert body["errors"][0]["extensions"]["status"] == "COMPLETED"
        assert "Traceback" not in str(body) and "SELECT" not in str(body)
    assert (await gql(client, GET, {"id": request["id"]}))["request"] == done


async def test_bad_requests_get_coded_errors_and_store_nothing(client, hub):
    start = await start_contact(client, email="bad.requests@example.com")
    contact_id, customer_id = start["contact"]["id"], start["customer"]["id"]
    cases = [
        ({"contactId": "con_nope", "kind": "QUOTE", "subject": "x"}, "UNKNOWN_CONTACT"),
        ({"contactId": "c" * 5000, "kind": "QUOTE", "subject": "x"}, "UNKNOWN_CONTACT"),
        ({"contactId": contact_id, "kind": "QUOTE", "subject": "   "}, "BAD_USER_INPUT"),
        ({"contactId": contact_id, "kind": "QUOTE", "subject": "s" * 201}, "BAD_USER_INPUT"),
        ({"contactId": contact_id, "kind": "QUOTE", "subject": "ok", "details": "d" * 4001}, "BAD_USER_INPUT"),
    ]
    for payload, code in cases:
        body = await gql(client, SUBMIT, {"input": payload}, ok=False)
        assert codes(body) == [code], (payload, body)
    body = await gql(client, SUBMIT, {"input": {"contactId": contact_id, "kind": "WISH", "subject": "x"}}, ok=False)
    assert body["errors"] and body.get("data") is None  # not a RequestKind: refused by validation

    await gql(client, "mutation($id: ID!) { endContact(contactId: $id) { id } }", {"id": contact_id})
    body = await gql(client, SUBMIT, {"input": {"contactId": contact_id, "kind": "QUOTE", "subject": "x"}}, ok=False)
    assert codes(body) == ["CONTACT_ENDED"]
    assert (await gql(client, OF_CUSTOMER, {"id": customer_id}))["customer"]["requests"] == []

    for rid in ("req_unknown", "r" * 500):
        body = await gql(client, UPDATE, {"id": rid, "status": "COMPLETED"}, ok=False)
        assert codes(body) == ["UNKNOWN_REQUEST"]
        assert (await gql(client, GET, {"id": rid}))["request"] is None
    body = await gql(client, UPDATE, {"id": "req_x", "status": "COMPLETED", "note": "n" * 501}, ok=False)
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_statuses_reach_cm_with_the_daily_flow_and_change_its_segments(client, hub):
    start = await start_contact(client, "SHOP", email="unhappy@example.com")
    customer_id = start["customer"]["id"]
    complaint = await submit(client, start["contact"]["id"], "COMPLAINT", subject="Card swallowed")
    flow = hub.flow("request-status-to-cm")
    await hub.settle()
    assert await hub.scheduler.deliver(flow) >= 1
    await hub.settle()
    segments = {s["id"] for s in (await gql(client, OF_CUSTOMER, {"id": customer_id}))["customer"]["segments"]}
    assert "open-complaint" in segments

    await gql(client, UPDATE, {"id": complaint["id"], "status": "COMPLETED", "note": "card returned"})
    await hub.settle()
    assert await hub.scheduler.deliver(flow) >= 1
    await hub.settle()
    segments = {s["id"] for s in (await gql(client, OF_CUSTOMER, {"id": customer_id}))["customer"]["segments"]}
    assert "open-complaint" not in segments


PRODUCTS = "query($id: ID!) { customer(id: $id) { products } }"


async def test_a_closed_sale_becomes_a_product_in_the_view(client, hub):
    start = await start_contact(client, email="buyer@example.com")
    contact_id, customer_id = start["contact"]["id"], start["customer"]["id"]
    assert (await gql(client, PRODUCTS, {"id": customer_id}))["customer"]["products"] == []

    quote = await submit(client, contact_id, "QUOTE", subject="Mortgage quote", offerId="mortgage-consult")
    assert quote["status"] == "OPEN"
    assert (await gql(client, PRODUCTS, {"id": customer_id}))["customer"]["products"] == []
    await gql(client, UPDATE, {"id": quote["id"], "status": "COMPLETED", "note": "signed"})
    assert (await gql(client, PRODUCTS, {"id": customer_id}))["customer"]["products"] == ["mortgage-consult"]

    # An accepted offer is a sale too: it reaches the CRM through the flow `sales-to-crm`, once.
    for _ in range(2):
        await gql(client, """mutation($c: ID!) { recordContactEvents(contactId: $c, events: [
            {type: PROPOSITION_RESPONSE, offerId: "savings-plus", response: ACCEPTED}]) { accepted } }""",
                  {"c": contact_id})
    await hub.settle()
    products = (await gql(client, PRODUCTS, {"id": customer_id}))["customer"]["products"]
    assert products == ["mortgage-consult", "savings-plus"]

    body = await gql(client, SUBMIT, {"input": {"contactId": contact_id, "kind": "QUOTE", "subject": "x",
                                                "offerId": "no-such-offer"}}, ok=False)
    assert codes(body) == ["UNKNOWN_OFFER"]
