"""An external back office on the bus: it reads `request.submitted` from its own queue (a flow with
`external: true`) and reports back with `request.status` events (a flow into the hub), correlated by
request id: applied once, in the transitions' order, a forbidden move dead-lettered with its reason."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from hub.config import SHIPPED_MAPPINGS
from hub.events import REQUEST_STATUS, REQUEST_SUBMITTED, RequestStatusData, make
from hub.model import RequestKind, RequestStatus
from tests.support import eventually, gql, start_contact

SUBMIT = """mutation($c: ID!) { submitRequest(input: {contactId: $c, kind: COMPLAINT, subject: "Card swallowed"}) {
  id status } }"""
GET = "query($id: ID!) { request(id: $id) { status history { status by note } } }"


@pytest.fixture
def hub_settings(hub_settings, tmp_path):
    folder = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, folder)
    hub_yaml = folder / "hub.yaml"
    data = yaml.safe_load(hub_yaml.read_text())
    data["systems"]["backoffice"] = {"adapter": "bus-backoffice"}
    data["flows"] += [
        {"name": "requests-to-backoffice", "source": "crm", "destination": "backoffice",
         "events": [REQUEST_SUBMITTED], "mode": "realtime", "external": True},
        {"name": "backoffice-status-to-hub", "source": "backoffice", "destination": "hub",
         "events": [REQUEST_STATUS], "mode": "realtime"},
    ]
    hub_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return hub_settings.model_copy(update={"mappings_dir": folder})


def status(request: dict, to: RequestStatus, at: datetime, note: str | None = None):
    return make(
        REQUEST_STATUS,
        RequestStatusData(requestId=request["requestId"], customerId=request["customerId"], kind=RequestKind.COMPLAINT,
                          status=to, at=at, note=note, by="backoffice-agent-7"),
        source="urn:backoffice", subject=request["customerId"], correlationid=request["requestId"],
    )


async def test_the_external_back_office_gets_requests_and_reports_their_status(client, hub):
    received: list = []

    async def back_office(event):  # the external system, reading its own queue
        received.append(event)

    await hub.bus.consume("flow.requests-to-backoffice", back_office)
    start = await start_contact(client, "SHOP", email="complainer@example.com")
    submitted = (await gql(client, SUBMIT, {"c": start["contact"]["id"]}))["submitRequest"]
    assert submitted["status"] == "OPEN"  # nothing settled at hand-over: it waits for the back office

    (event,) = await eventually(lambda: received, timeout=10)
    assert event.type == REQUEST_SUBMITTED and event.data["requestId"] == submitted["id"]
    assert event.data["subject"] == "Card swallowed" and event.subject == start["customer"]["id"]

    t0 = datetime.now(UTC)
    progress = status(event.data, RequestStatus.IN_PROGRESS, t0, "looking into it")
    done = status(event.data, RequestStatus.COMPLETED, t0 + timedelta(seconds=1), "card returned")
    for e in (progress, progress, done):  # a redelivery of the first: applied once
        await hub.bus.publish(e)
    await hub.settle()

    async def history():
        got = (await gql(client, GET, {"id": submitted["id"]}))["request"]
        return got if got["status"] == "COMPLETED" else None

    got = await eventually(history, timeout=10)
    assert [(h["status"], h["by"], h["note"]) for h in got["history"]] == [
        ("OPEN", "SHOP", None), ("IN_PROGRESS", "backoffice-agent-7", "looking into it"),
        ("COMPLETED", "backoffice-agent-7", "card returned"),
    ]

    # Completed is final: a late report of another move is a dead letter with its reason, and changes nothing.
    await hub.bus.publish(status(event.data, RequestStatus.IN_PROGRESS, t0 + timedelta(seconds=2)))
    letters = await eventually(lambda: hub.bus.dead_letters(), timeout=15)
    assert any("cannot become IN_PROGRESS" in d.reason for d in letters), letters
    assert (await gql(client, GET, {"id": submitted["id"]}))["request"]["status"] == "COMPLETED"
