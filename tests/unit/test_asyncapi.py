"""schema/asyncapi.yaml is the contract integrators on other stacks consume the bus from: it must
document every event of the catalog (hub.events.CATALOG), with the envelope and `data` exactly as the
code builds them.

`jsonschema` is not a dependency of the project, so the schemas are checked by the small validator
below. It knows the keywords the document uses and refuses any other, so nothing is silently skipped.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.config import Settings
from hub.events import (
    CATALOG,
    CONTACT_EVENT_TYPES,
    CUSTOMER_CONSENT,
    CUSTOMER_CREATED,
    LEAD_CREATED,
    LEAD_RESPONSE,
    PRIVACY_ERASURE_REQUESTED,
    PRIVACY_EXPORT_REQUESTED,
    REQUEST_STATUS,
    REQUEST_SUBMITTED,
    CloudEvent,
    ConsentData,
    LeadCreatedData,
    LeadResponseData,
    MalformedEvent,
    PrivacyRequested,
    RequestStatusData,
    RequestSubmittedData,
    contact_event_data,
    make,
    new_id,
    read,
)
from hub.model import (
    Channel,
    ContactEvent,
    ContactEventType,
    Lead,
    LeadChannel,
    LeadStatus,
    PropositionResponse,
    RequestKind,
    RequestStatus,
)
from hub.ports import new_lead_code

ROOT = Path(__file__).resolve().parents[2]
ASYNCAPI = ROOT / "schema" / "asyncapi.yaml"

EMITTED = set(CATALOG)
# The envelope's trace context (CloudEvents distributed-tracing extension): written only while tracing is
# on (hub.observability.tracing); tests/observability/test_tracing.py validates a traced envelope.
TRACE_CONTEXT = {"traceparent", "tracestate"}
# Types the design plans and the catalog does not have yet: named in the description, with no channel.
PLANNED: set[str] = set()
# Catalogued types the contact scenario below does not emit: the request events, which hub.core.requests
# writes (and an external CRM may publish), and the lead events, which hub.core.leads writes (Campaigns on
# launchCampaign, Responses on a response to a lead). Each is checked on a sample built the way that
# producer builds it (below); move a type out once the scenario emits it.
SAMPLED = {REQUEST_SUBMITTED, REQUEST_STATUS, LEAD_CREATED, LEAD_RESPONSE}
# The privacy requests, which hub.core.privacy writes (eraseCustomer, exportCustomer): sampled too.
SAMPLED |= {PRIVACY_ERASURE_REQUESTED, PRIVACY_EXPORT_REQUESTED}
# And the consent a customer gives or withdraws (hub.core.consents: setConsent, the unsubscribe link).
SAMPLED |= {CUSTOMER_CONSENT}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))


# --- a small JSON Schema validator ------------------------------------------------------------------

ANNOTATIONS = {"description", "title", "examples", "default"}
KEYWORDS = {
    "$ref",
    "type",
    "required",
    "properties",
    "items",
    "enum",
    "const",
    "allOf",
    "anyOf",
    "format",
    "pattern",
} | ANNOTATIONS
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def _date_time(v: str) -> bool:
    try:
        parsed = datetime.fromisoformat(v)
    except ValueError:
        return False
    return "T" in v and parsed.tzinfo is not None


def _uuid(v: str) -> bool:
    try:
        return str(uuid.UUID(v)) == v.lower()
    except ValueError:
        return False


FORMATS = {
    "date-time": _date_time,
    "uuid": _uuid,
    "uri-reference": lambda v: bool(v) and not re.search(r"\s", v),
}


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references: {ref}"
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def errors(doc: dict[str, Any], schema: dict[str, Any], value: Any, where: str = "$") -> Iterator[str]:
    unknown = set(schema) - KEYWORDS
    assert not unknown, f"the validator does not know {sorted(unknown)} (at {where})"
    if "$ref" in schema:
        yield from errors(doc, resolve(doc, schema["$ref"]), value, where)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[t](value) for t in types):
            yield f"{where}: {value!r} is not of type {types}"
            return
    if "const" in schema and value != schema["const"]:
        yield f"{where}: {value!r} is not {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        yield f"{where}: {value!r} is not one of {schema['enum']}"
    if isinstance(value, str):
        if "format" in schema and not FORMATS[schema["format"]](value):
            yield f"{where}: {value!r} is not a {schema['format']}"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            yield f"{where}: {value!r} does not match {schema['pattern']}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                yield f"{where}: missing {key!r}"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                yield from errors(doc, sub, value[key], f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from errors(doc, schema["items"], item, f"{where}[{i}]")
    for sub in schema.get("allOf", []):
        yield from errors(doc, sub, value, where)
    if "anyOf" in schema:
        branches = [list(errors(doc, sub, value, where)) for sub in schema["anyOf"]]
        if all(branches):
            yield f"{where}: matches none of anyOf: {branches}"


def validate(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    return list(errors(doc, schema, value))


def collect(doc: dict[str, Any], schema: dict[str, Any], keyword: str) -> set[str]:
    """Required keys (keyword="required") or property names ("properties") across $ref and allOf."""
    out: set[str] = set(schema.get(keyword, []))
    if "$ref" in schema:
        out |= collect(doc, resolve(doc, schema["$ref"]), keyword)
    for sub in schema.get("allOf", []):
        out |= collect(doc, sub, keyword)
    return out


# --- reading the document ---------------------------------------------------------------------------


def channels_by_address(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["address"]: c for c in doc["channels"].values()}


def message_for(doc: dict[str, Any], event_type: str) -> dict[str, Any]:
    channel = channels_by_address(doc)[event_type]
    (message,) = channel["messages"].values()
    return resolve(doc, message["$ref"]) if "$ref" in message else message


def payload_schema(doc: dict[str, Any], event_type: str) -> dict[str, Any]:
    return message_for(doc, event_type)["payload"]


def data_schema(doc: dict[str, Any], event_type: str) -> dict[str, Any]:
    """The `data` schema a message's payload gives (the part of its allOf that sets `data`)."""
    found = [
        part["properties"]["data"]
        for part in payload_schema(doc, event_type)["allOf"]
        if "data" in part.get("properties", {})
    ]
    assert len(found) == 1, f"{event_type}: no single data schema"
    return found[0]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


# --- the document -----------------------------------------------------------------------------------


def test_document_parses_and_every_reference_resolves(doc):
    assert str(doc["asyncapi"]).startswith(("2.6", "3."))
    assert doc["info"]["title"] and doc["info"]["version"]
    refs = set(_refs(doc))
    assert refs
    for ref in refs:
        assert resolve(doc, ref) is not None, ref


def test_every_event_type_the_code_emits_has_a_message(doc):
    documented = set(channels_by_address(doc))
    assert documented == EMITTED, (
        f"undocumented: {sorted(EMITTED - documented)}, not emitted by the code: {sorted(documented - EMITTED)}"
    )
    for event_type in EMITTED:
        message = message_for(doc, event_type)
        assert message["name"] == event_type
        assert collect(doc, payload_schema(doc, event_type), "required") >= {"type", "data"}
        consts = [
            part["properties"]["type"].get("const")
            for part in payload_schema(doc, event_type)["allOf"]
            if "type" in part.get("properties", {})
        ]
        assert consts == [event_type]


def test_the_hub_sends_every_documented_channel(doc):
    sent = {
        resolve(doc, op["channel"]["$ref"])["address"]
        for op in doc["operations"].values()
        if op["action"] == "send"
    }
    assert sent == EMITTED


def test_planned_types_are_described_not_invented(doc):
    assert not PLANNED & set(channels_by_address(doc))
    assert not PLANNED & {m["name"] for m in doc["components"]["messages"].values()}
    description = doc["info"]["description"]
    for event_type in PLANNED:
        assert f"`{event_type}`" in description


def test_amqp_binding_matches_the_rabbitmq_bus(doc):
    from hub.messaging.bus.rabbitmq import CONTENT_TYPE, RabbitBus

    settings = Settings()
    assert settings.bus_namespace == "hub"
    for event_type, channel in channels_by_address(doc).items():
        bindings = channel["bindings"]
        binding = (resolve(doc, bindings["$ref"]) if "$ref" in bindings else bindings)["amqp"]
        assert binding["is"] == "routingKey"
        exchange = binding["exchange"]
        assert exchange["name"] == RabbitBus(settings).exchange_name == "hub.events"
        assert exchange["type"] == "topic"
        assert exchange["durable"] is True
        message = message_for(doc, event_type)
        traits = [resolve(doc, t["$ref"]) for t in message.get("traits", [])]
        content_types = {t.get("contentType") for t in traits} | {message.get("contentType")}
        content_types.discard(None)
        assert content_types == {CONTENT_TYPE} == {"application/cloudevents+json"}
        assert doc["defaultContentType"] == CONTENT_TYPE
        correlation = correlation_of(doc, event_type)
        assert correlation["location"] == "$message.payload#/correlationid"
    assert correlation_of(doc, REQUEST_STATUS) == doc["components"]["correlationIds"]["request"]
    assert correlation_of(doc, REQUEST_SUBMITTED) == doc["components"]["correlationIds"]["request"]
    assert correlation_of(doc, "contact.response") == doc["components"]["correlationIds"]["contact"]
    assert correlation_of(doc, LEAD_CREATED) == doc["components"]["correlationIds"]["lead"]
    assert correlation_of(doc, LEAD_RESPONSE) == doc["components"]["correlationIds"]["lead"]


def correlation_of(doc: dict[str, Any], event_type: str) -> dict[str, Any]:
    """The message's correlation id: its own, else its one trait's (a trait never overrides the message)."""
    message = message_for(doc, event_type)
    traits = [resolve(doc, t["$ref"]) for t in message.get("traits", [])]
    found = [message["correlationId"]] if "correlationId" in message else [
        t["correlationId"] for t in traits if "correlationId" in t
    ]
    assert len(found) == 1, event_type
    return resolve(doc, found[0]["$ref"]) if "$ref" in found[0] else found[0]


def test_the_amqp_message_properties_are_the_ones_described(doc):
    """message_id = event id and correlation_id = correlationid, as the description promises."""
    from hub.messaging.bus.rabbitmq import RabbitBus

    event = CloudEvent(type="contact.response", source="urn:t", data={}, correlationid="con_1")
    message = RabbitBus.message_for(event)
    assert message.message_id == event.id
    assert message.correlation_id == "con_1"
    assert message.content_type == "application/cloudevents+json"
    assert message.delivery_mode == 2
    from hub.messaging.bus.rabbitmq.publisher import properties_of

    sent = properties_of(event)  # what the publisher puts on the wire
    assert (sent.message_id, sent.correlation_id, sent.content_type, sent.delivery_mode, sent.message_type) == (
        event.id, "con_1", "application/cloudevents+json", 2, "contact.response")
    assert sent.timestamp == event.time
    description = doc["info"]["description"]
    assert "`message_id` = the CloudEvent `id`" in description
    assert "`correlation_id` = the CloudEvent `correlationid`" in description


# --- contact events: ContactEvent.to_data against the documented schema -----------------------------

OFFER = "savings-plus"


def contact_event(kind: ContactEventType) -> ContactEvent:
    """A valid event of this kind, as the channel may send it (hub.core.events._check)."""
    extra: dict[str, Any] = {
        ContactEventType.PROPOSITION_SHOWN: {"offer_id": OFFER, "decision_id": "dec_1"},
        ContactEventType.PROPOSITION_RESPONSE: {"offer_id": OFFER, "response": PropositionResponse.LATER},
        ContactEventType.INTEREST_SHOWN: {"topic": "mortgage"},
        ContactEventType.BANNER_CLICK: {"offer_id": OFFER},
    }[kind]
    return ContactEvent(
        id=new_id(),
        type=kind,
        customer_id=f"cus_{uuid.uuid4().hex[:20]}",
        contact_id=f"con_{uuid.uuid4().hex[:20]}",
        channel=Channel.WEBSITE,
        occurred_at=datetime.now(UTC) - timedelta(seconds=3),
        **extra,
    )


def to_data(e: ContactEvent) -> dict[str, Any]:
    return contact_event_data(e).to_data()


def cloud_event(e: ContactEvent) -> dict[str, Any]:
    """The envelope as hub.core.events.EventService.record builds it."""
    return make(
        CONTACT_EVENT_TYPES[e.type],
        contact_event_data(e),
        id=e.id,
        source=Settings().source,
        subject=e.customer_id,
        time=e.occurred_at,
        correlationid=e.contact_id,
    ).to_dict()


@pytest.mark.parametrize("kind", list(ContactEventType))
def test_contact_event_data_validates(doc, kind):
    data = to_data(contact_event(kind))
    assert validate(doc, data_schema(doc, CONTACT_EVENT_TYPES[kind]), data) == []


@pytest.mark.parametrize("kind", list(ContactEventType))
def test_contact_event_envelope_validates(doc, kind):
    envelope = cloud_event(contact_event(kind))
    assert validate(doc, payload_schema(doc, CONTACT_EVENT_TYPES[kind]), envelope) == []
    assert collect(doc, payload_schema(doc, CONTACT_EVENT_TYPES[kind]), "properties") == set(envelope) | TRACE_CONTEXT


@pytest.mark.parametrize("kind", list(ContactEventType))
def test_documented_data_keys_equal_the_keys_the_code_produces(doc, kind):
    produced = set(to_data(contact_event(kind)))
    schema = data_schema(doc, CONTACT_EVENT_TYPES[kind])
    assert collect(doc, schema, "required") == produced
    assert collect(doc, schema, "properties") == produced


def test_the_validator_rejects_data_that_breaks_the_contract(doc):
    schema = data_schema(doc, "contact.response")
    good = to_data(contact_event(ContactEventType.PROPOSITION_RESPONSE))
    assert validate(doc, schema, good) == []
    missing = {k: v for k, v in good.items() if k != "decisionId"}
    assert any("missing 'decisionId'" in e for e in validate(doc, schema, missing))
    assert validate(doc, schema, {**good, "response": None})  # a response needs its answer
    assert validate(doc, schema, {**good, "response": "MAYBE"})
    assert validate(doc, schema, {**good, "channel": "FAX"})
    assert validate(doc, schema, {**good, "occurredAt": "yesterday"})
    assert validate(doc, schema, {**good, "occurredAt": "2024-05-01T10:00:00"})  # no offset
    assert validate(doc, schema, {**good, "eventType": "PROPOSITION_SHOWN"})
    interest = data_schema(doc, "contact.interest.shown")
    bare = to_data(contact_event(ContactEventType.INTEREST_SHOWN))
    assert validate(doc, interest, {**bare, "topic": None, "offerId": None})  # needs a topic or offer
    envelope = cloud_event(contact_event(ContactEventType.BANNER_CLICK))
    assert validate(doc, payload_schema(doc, "contact.banner.click"), {**envelope, "specversion": "0.3"})
    assert validate(doc, payload_schema(doc, "contact.response"), envelope)  # wrong type for the channel


# --- every event, from the real use cases -----------------------------------------------------------


@pytest.fixture
async def emitted(tmp_path) -> list[CloudEvent]:
    """Run the contact use cases on a real hub (SQLite, embedded bus) and capture every event they
    write to the outbox, including types no shipped flow subscribes to, and the change announcements
    published after their commits."""
    from hub.core.contacts import ContactService
    from hub.core.events import EventInput, EventService
    from hub.messaging.changes import changed
    from hub.messaging.outbox import Outbox
    from hub.model import Key, KeyKind
    from hub.roles import CONTACT_REGISTRY
    from hub.runtime import Hub

    class Capture(Outbox):
        def __init__(self) -> None:
            super().__init__(("#",))
            self.events: list[CloudEvent] = []

        async def add(self, tx: Any, events: Any) -> None:
            self.events.extend(e for e in events if self.routed(e.type))

    hub = Hub(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", broker_url="memory://"))
    await hub.start(consume=False)
    try:
        capture = Capture()

        def committed(system: str, ids: Any) -> None:
            # What the reactions publish after the commit (hub.messaging.reactions), built the same way.
            if ids:
                capture.events.append(changed(hub.instance, system, ids))

        contacts = ContactService(
            hub.engine, "crm", hub.systems.one(CONTACT_REGISTRY), capture, hub.settings.source, committed,
        )
        events = EventService(
            hub.engine, contacts, hub.decisions, capture, hub.settings.source, 100, lambda *_: None,
            hub.pacing.turn,
        )
        email = Key(KeyKind.EMAIL, "ann@example.com")
        first = await contacts.start(Channel.WEBSITE, [email], "Ann")  # contact.started, customer.created
        await events.record(
            first.contact.id,
            [
                EventInput(ContactEventType.PROPOSITION_SHOWN, offer_id=OFFER),
                EventInput(
                    ContactEventType.PROPOSITION_RESPONSE,
                    offer_id=OFFER,
                    response=PropositionResponse.ACCEPTED,
                ),
                EventInput(ContactEventType.INTEREST_SHOWN, topic="mortgage"),
                EventInput(ContactEventType.BANNER_CLICK, offer_id=OFFER),
            ],
        )
        await contacts.end(first.contact.id, None)  # contact.ended
        second = await contacts.start(  # customer.updated: a new phone key
            Channel.CALLCENTER, [email, Key(KeyKind.PHONE, "+31612345678")], None
        )
        await contacts.end(second.contact.id, "callback requested")
        await contacts.import_customer([Key(KeyKind.EMAIL, "bob@example.com")], "Bob", {"tier": "gold"})
        return capture.events
    finally:
        await hub.close()


async def test_every_emitted_event_validates_against_its_message(doc, emitted):
    # The scenario covers every type but the sampled ones (move a type out of SAMPLED once it does).
    assert {e.type for e in emitted} == EMITTED - SAMPLED
    lead = planned_lead()
    emitted = [
        *emitted,
        request_submitted_event(),
        request_status_event(),
        lead_created_event(lead),
        lead_response_event(lead),
        privacy_requested_event("ERASURE"),
        privacy_requested_event("EXPORT"),
        consent_event(None),
        consent_event(Channel.EMAIL),
    ]
    for event in emitted:
        envelope = event.to_dict()
        assert validate(doc, payload_schema(doc, event.type), envelope) == [], event.type
        schema = data_schema(doc, event.type)
        assert collect(doc, schema, "required") == set(event.data), event.type
        assert collect(doc, schema, "properties") == set(event.data), event.type


async def test_customer_created_by_import_has_no_correlation_id(doc, emitted):
    imported = [e for e in emitted if e.type == CUSTOMER_CREATED and e.data["name"] == "Bob"]
    assert len(imported) == 1
    envelope = imported[0].to_dict()
    assert "correlationid" not in envelope
    assert "correlationid" not in collect(doc, payload_schema(doc, CUSTOMER_CREATED), "required")
    assert envelope["data"]["attributes"] == {"tier": "gold"}


@pytest.mark.parametrize("event_type", sorted(CATALOG))
def test_documented_data_keys_equal_the_catalog_payload(doc, event_type):
    """The catalog's typed payload and the document's `data` name the same fields."""
    fields = set(CATALOG[event_type].payload.model_fields)
    schema = data_schema(doc, event_type)
    assert collect(doc, schema, "properties") == fields
    assert collect(doc, schema, "required") == fields


# --- request.submitted: a sample, built as hub.core.requests builds it -----------------------------


def request_submitted_event(
    kind: RequestKind = RequestKind.QUOTE,
    details: str | None = "a 20-year fixed rate",
    offer_id: str | None = OFFER,
) -> CloudEvent:
    """subject = the customer, correlationid = the request (as on request.status)."""
    customer_id = f"cus_{uuid.uuid4().hex[:20]}"
    request_id = f"req_{uuid.uuid4().hex[:20]}"
    data = RequestSubmittedData(
        requestId=request_id, customerId=customer_id, contactId=f"con_{uuid.uuid4().hex[:20]}", kind=kind,
        subject="Mortgage quote", details=details, offerId=offer_id, at=datetime.now(UTC),
    )
    return make(REQUEST_SUBMITTED, data, source=Settings().source, subject=customer_id,
                correlationid=request_id)


@pytest.mark.parametrize("kind", list(RequestKind))
def test_request_submitted_envelope_and_data_validate(doc, kind):
    bare = kind is RequestKind.COMPLAINT  # no details, no offer: null, yet present
    event = request_submitted_event(kind, None if bare else "details", None if bare else OFFER)
    envelope = event.to_dict()
    assert validate(doc, payload_schema(doc, REQUEST_SUBMITTED), envelope) == []
    assert collect(doc, payload_schema(doc, REQUEST_SUBMITTED), "properties") == set(envelope) | TRACE_CONTEXT
    schema = data_schema(doc, REQUEST_SUBMITTED)
    assert validate(doc, schema, event.data) == []
    assert collect(doc, schema, "required") == set(event.data) == collect(doc, schema, "properties")
    assert envelope["subject"] == event.data["customerId"]
    assert envelope["correlationid"] == event.data["requestId"]
    assert read(event, RequestSubmittedData).kind is kind


def test_the_validator_rejects_request_submitted_that_breaks_the_contract(doc):
    schema = data_schema(doc, REQUEST_SUBMITTED)
    event = request_submitted_event()
    good = event.data
    assert validate(doc, schema, good) == []
    assert validate(doc, schema, {**good, "kind": "PRAISE"})
    assert validate(doc, schema, {**good, "contactId": "CON-1"})  # not a hub contact id
    assert validate(doc, schema, {**good, "subject": None})
    assert validate(doc, schema, {**good, "at": "2024-05-01T10:00:00"})  # no offset
    for key in ("details", "offerId"):
        assert any(f"missing {key!r}" in e for e in validate(doc, schema, {k: v for k, v in good.items() if k != key}))
    envelope = payload_schema(doc, REQUEST_SUBMITTED)
    assert validate(doc, envelope, {**event.to_dict(), "subject": "CRM-1"})  # not a golden id
    assert validate(doc, envelope, {k: v for k, v in event.to_dict().items() if k != "correlationid"})
    assert validate(doc, payload_schema(doc, REQUEST_STATUS), event.to_dict())  # wrong type for the channel


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"kind": "PRAISE"}, "data.kind"),
        ({"requestId": ""}, "data.requestId"),
        ({"contactId": "c" * 41}, "data.contactId"),
        ({"subject": ""}, "data.subject"),
        ({"subject": "s" * 201}, "data.subject"),
        ({"details": "d" * 4001}, "data.details"),
        ({"offerId": ""}, "data.offerId"),
        ({"at": "yesterday"}, "data.at"),
    ],
)
def test_a_bad_request_submitted_is_malformed(change, where):
    event = request_submitted_event()
    bad = CloudEvent(type=REQUEST_SUBMITTED, source="urn:t", data={**event.data, **change})
    with pytest.raises(MalformedEvent) as info:
        read(bad, RequestSubmittedData)
    assert f"{REQUEST_SUBMITTED} {bad.id}: {where}:" in str(info.value)


# --- request.status: a sample, built as the CRM's producer must build it ----------------------------


def request_status_event(
    status: RequestStatus = RequestStatus.IN_PROGRESS,
    note: str | None = "called back",
    by: str | None = "back office",
) -> CloudEvent:
    """subject = the customer, correlationid = the request, time = when the request got the status."""
    customer_id = f"cus_{uuid.uuid4().hex[:20]}"
    at = datetime.now(UTC) - timedelta(hours=5)
    data = RequestStatusData(
        requestId="REQ-2026-000123", customerId=customer_id, kind=RequestKind.COMPLAINT, status=status,
        at=at, note=note, by=by,
    )
    return make(REQUEST_STATUS, data, source=Settings().source, subject=customer_id,
                correlationid=data.requestId, time=at)


@pytest.mark.parametrize("status", list(RequestStatus))
def test_request_status_envelope_and_data_validate(doc, status):
    opened = status is RequestStatus.OPEN  # as on submission: no note, given by the channel
    event = request_status_event(status, note=None if opened else "a note", by="WEBSITE" if opened else None)
    envelope = event.to_dict()
    assert validate(doc, payload_schema(doc, REQUEST_STATUS), envelope) == []
    assert collect(doc, payload_schema(doc, REQUEST_STATUS), "properties") == set(envelope) | TRACE_CONTEXT
    schema = data_schema(doc, REQUEST_STATUS)
    assert validate(doc, schema, event.data) == []
    assert collect(doc, schema, "required") == set(event.data) == collect(doc, schema, "properties")
    assert envelope["subject"] == event.data["customerId"]
    assert envelope["correlationid"] == event.data["requestId"]
    assert read(event, RequestStatusData).status is status


def test_request_enums_are_the_models(doc):
    def enum(event_type: str, key: str) -> list[str]:
        schema = resolve(doc, data_schema(doc, event_type)["$ref"])["properties"][key]
        return (resolve(doc, schema["$ref"]) if "$ref" in schema else schema)["enum"]

    assert enum(REQUEST_STATUS, "kind") == enum(REQUEST_SUBMITTED, "kind") == [k.value for k in RequestKind]
    assert enum(REQUEST_STATUS, "status") == [s.value for s in RequestStatus]


def test_the_validator_rejects_request_status_that_breaks_the_contract(doc):
    schema = data_schema(doc, REQUEST_STATUS)
    event = request_status_event()
    good = event.data
    assert validate(doc, schema, good) == []
    assert validate(doc, schema, {**good, "status": "DONE"})
    assert validate(doc, schema, {**good, "kind": "PRAISE"})
    assert validate(doc, schema, {**good, "at": "2024-05-01T10:00:00"})  # no offset
    for key in ("note", "by"):
        assert any(f"missing {key!r}" in e for e in validate(doc, schema, {k: v for k, v in good.items() if k != key}))
    assert validate(doc, schema, {**good, "by": 7})
    envelope = payload_schema(doc, REQUEST_STATUS)
    assert validate(doc, envelope, {**event.to_dict(), "subject": "CRM-1"})  # not a golden id
    assert validate(doc, envelope, {k: v for k, v in event.to_dict().items() if k != "correlationid"})
    # A contact event's correlationid is still a contact id.
    contact = cloud_event(contact_event(ContactEventType.BANNER_CLICK))
    assert validate(doc, payload_schema(doc, "contact.banner.click"), {**contact, "correlationid": "REQ-1"})


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"status": "DONE"}, "data.status"),
        ({"kind": "PRAISE"}, "data.kind"),
        ({"requestId": ""}, "data.requestId"),
        ({"customerId": "c" * 41}, "data.customerId"),
        ({"at": "yesterday"}, "data.at"),
        ({"note": "n" * 501}, "data.note"),
        ({"by": "b" * 81}, "data.by"),
    ],
)
def test_a_bad_request_status_is_malformed(change, where):
    event = request_status_event()
    bad = CloudEvent(type=REQUEST_STATUS, source="urn:t", data={**event.data, **change})
    with pytest.raises(MalformedEvent) as info:
        read(bad, RequestStatusData)
    assert f"{REQUEST_STATUS} {bad.id}: {where}:" in str(info.value)


def test_a_naive_request_status_time_is_utc():
    """Also: a CRM that does not say who gave the status (no `by`) is read."""
    event = request_status_event()
    data = {k: v for k, v in event.data.items() if k != "by"}
    naive = CloudEvent(type=REQUEST_STATUS, source="urn:t", data={**data, "at": "2026-03-10T12:00:00", "note": None})
    data = read(naive, RequestStatusData)
    assert data.at == datetime(2026, 3, 10, 12, tzinfo=UTC) and data.note is None and data.by is None


# --- lead.created and lead.response: samples, built as hub.core.leads builds them -------------------


def planned_lead(channel: LeadChannel = LeadChannel.EMAIL, in_campaign: bool = True) -> Lead:
    """A lead as the built-in CM plans it (adapters/cm: plan); outside a campaign, campaign_id is None."""
    return Lead(
        id=f"lead_{uuid.uuid4().hex[:20]}",
        code=new_lead_code(),
        campaign_id=f"cmp_{uuid.uuid4().hex[:20]}" if in_campaign else None,
        customer_id=f"cus_{uuid.uuid4().hex[:20]}",
        offer_id=OFFER,
        title="Savings Plus account - 2.5% interest",
        channel=channel,
        decision_id=f"dec_{uuid.uuid4().hex[:16]}",
        created_at=datetime.now(UTC) - timedelta(days=2),
    )


def lead_created_event(lead: Lead) -> CloudEvent:
    """As hub.core.leads.Campaigns._created: subject = the customer, correlationid = the lead."""
    return make(
        LEAD_CREATED,
        LeadCreatedData(
            leadId=lead.id,
            code=lead.code,
            campaignId=lead.campaign_id,
            customerId=lead.customer_id,
            offerId=lead.offer_id,
            title=lead.title,
            channel=lead.channel,
            decisionId=lead.decision_id,
            at=lead.created_at or datetime.now(UTC),
        ),
        source=Settings().source,
        subject=lead.customer_id,
        correlationid=lead.id,
    )


def lead_response_event(
    lead: Lead,
    channel: Channel = Channel.EMAIL,
    response: PropositionResponse = PropositionResponse.ACCEPTED,
) -> CloudEvent:
    """As hub.core.leads.Responses._response, on the lead as LM returns it once it recorded the response."""
    lead = dataclasses.replace(
        lead, status=LeadStatus.RESPONDED, response=response, response_channel=channel.value,
        responded_at=datetime.now(UTC),
    )
    return make(
        LEAD_RESPONSE,
        LeadResponseData(
            leadId=lead.id,
            customerId=lead.customer_id,
            offerId=lead.offer_id,
            decisionId=lead.decision_id,
            channel=channel,
            response=response,
            at=lead.responded_at or datetime.now(UTC),
        ),
        source=Settings().source,
        subject=lead.customer_id,
        correlationid=lead.id,
    )


@pytest.mark.parametrize("channel", list(LeadChannel))
def test_lead_created_envelope_and_data_validate(doc, channel):
    outside = channel is LeadChannel.CALLCENTER  # a lead planned outside a campaign: campaignId null, present
    event = lead_created_event(planned_lead(channel, in_campaign=not outside))
    envelope = event.to_dict()
    assert validate(doc, payload_schema(doc, LEAD_CREATED), envelope) == []
    assert collect(doc, payload_schema(doc, LEAD_CREATED), "properties") == set(envelope) | TRACE_CONTEXT
    schema = data_schema(doc, LEAD_CREATED)
    assert validate(doc, schema, event.data) == []
    assert collect(doc, schema, "required") == set(event.data) == collect(doc, schema, "properties")
    assert (event.data["campaignId"] is None) is outside
    assert envelope["subject"] == event.data["customerId"]
    assert envelope["correlationid"] == event.data["leadId"]
    assert read(event, LeadCreatedData).channel is channel


@pytest.mark.parametrize("response", list(PropositionResponse))
@pytest.mark.parametrize("channel", list(Channel))
def test_lead_response_envelope_and_data_validate(doc, channel, response):
    lead = planned_lead(LeadChannel.PRINT)  # a letter, answered through any channel
    created = lead_created_event(lead)
    event = lead_response_event(lead, channel, response)
    envelope = event.to_dict()
    assert validate(doc, payload_schema(doc, LEAD_RESPONSE), envelope) == []
    assert collect(doc, payload_schema(doc, LEAD_RESPONSE), "properties") == set(envelope) | TRACE_CONTEXT
    schema = data_schema(doc, LEAD_RESPONSE)
    assert validate(doc, schema, event.data) == []
    assert collect(doc, schema, "required") == set(event.data) == collect(doc, schema, "properties")
    assert envelope["subject"] == event.data["customerId"]
    assert envelope["correlationid"] == event.data["leadId"] == created.correlationid
    for key in ("leadId", "customerId", "offerId", "decisionId"):  # the lead's, as on its lead.created
        assert event.data[key] == created.data[key]
    data = read(event, LeadResponseData)
    assert (data.channel, data.response) == (channel, response)


def test_lead_enums_are_the_models(doc):
    def enum(event_type: str, key: str) -> list[str]:
        schema = data_schema(doc, event_type)
        schema = resolve(doc, schema["$ref"])["properties"][key]
        return (resolve(doc, schema["$ref"]) if "$ref" in schema else schema)["enum"]

    assert enum(LEAD_CREATED, "channel") == [c.value for c in LeadChannel]
    assert enum(LEAD_RESPONSE, "channel") == [c.value for c in Channel]
    assert enum(LEAD_RESPONSE, "response") == [r.value for r in PropositionResponse]


def test_the_lead_flows_described_are_the_shipped_ones(doc):
    mapping = yaml.safe_load((ROOT / "mappings" / "hub.yaml").read_text(encoding="utf-8"))
    flows = {f["name"]: f for f in mapping["flows"]}
    description = doc["info"]["description"]
    for name, event_type in (("leads-to-lm", LEAD_CREATED), ("lead-responses-to-cm", LEAD_RESPONSE)):
        assert f"`{name}`" in description
        assert flows[name]["events"] == [event_type]
        assert flows[name]["mode"] == "realtime"
    assert "Planned, not emitted yet" not in description


def test_the_validator_rejects_lead_created_that_breaks_the_contract(doc):
    schema = data_schema(doc, LEAD_CREATED)
    event = lead_created_event(planned_lead())
    good = event.data
    assert validate(doc, schema, good) == []
    assert validate(doc, schema, {**good, "channel": "SHOP"})  # not an outbound channel
    assert validate(doc, schema, {**good, "channel": "WEBSITE"})
    assert validate(doc, schema, {**good, "customerId": "CRM-1"})  # not a golden id
    assert validate(doc, schema, {**good, "code": None})
    assert validate(doc, schema, {**good, "decisionId": None})
    assert validate(doc, schema, {**good, "at": "2024-05-01T10:00:00"})  # no offset
    for key in ("campaignId", "decisionId", "code"):
        assert any(f"missing {key!r}" in e for e in validate(doc, schema, {k: v for k, v in good.items() if k != key}))
    envelope = payload_schema(doc, LEAD_CREATED)
    assert validate(doc, envelope, {**event.to_dict(), "subject": "CRM-1"})  # not a golden id
    assert validate(doc, envelope, {k: v for k, v in event.to_dict().items() if k != "correlationid"})
    assert validate(doc, payload_schema(doc, LEAD_RESPONSE), event.to_dict())  # wrong type for the channel
    # A contact event's correlationid is still a contact id, not a lead.
    contact = cloud_event(contact_event(ContactEventType.BANNER_CLICK))
    assert validate(doc, payload_schema(doc, "contact.banner.click"), {**contact, "correlationid": good["leadId"]})


def test_the_validator_rejects_lead_response_that_breaks_the_contract(doc):
    schema = data_schema(doc, LEAD_RESPONSE)
    event = lead_response_event(planned_lead())
    good = event.data
    assert validate(doc, schema, good) == []
    assert validate(doc, schema, {**good, "channel": "PRINT"})  # where it came in: not an outbound channel
    assert validate(doc, schema, {**good, "response": "MAYBE"})
    assert validate(doc, schema, {**good, "response": None})  # a response needs its answer
    assert validate(doc, schema, {**good, "customerId": "CRM-1"})
    assert validate(doc, schema, {**good, "at": "yesterday"})
    assert validate(doc, schema, {**good, "at": "2024-05-01T10:00:00"})  # no offset
    for key in ("leadId", "decisionId", "offerId"):
        assert any(f"missing {key!r}" in e for e in validate(doc, schema, {k: v for k, v in good.items() if k != key}))
    envelope = payload_schema(doc, LEAD_RESPONSE)
    assert validate(doc, envelope, {**event.to_dict(), "subject": "CRM-1"})
    assert validate(doc, envelope, {k: v for k, v in event.to_dict().items() if k != "correlationid"})
    assert validate(doc, payload_schema(doc, LEAD_CREATED), event.to_dict())  # wrong type for the channel
    assert validate(doc, payload_schema(doc, "contact.response"), event.to_dict())  # not a contact response


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"leadId": ""}, "data.leadId"),
        ({"code": "K7M"}, "data.code"),
        ({"code": "C" * 41}, "data.code"),
        ({"campaignId": "c" * 41}, "data.campaignId"),
        ({"customerId": ""}, "data.customerId"),
        ({"offerId": ""}, "data.offerId"),
        ({"title": ""}, "data.title"),
        ({"title": "t" * 201}, "data.title"),
        ({"channel": "SHOP"}, "data.channel"),
        ({"decisionId": ""}, "data.decisionId"),
        ({"decisionId": "d" * 121}, "data.decisionId"),
        ({"at": "yesterday"}, "data.at"),
    ],
)
def test_a_bad_lead_created_is_malformed(change, where):
    event = lead_created_event(planned_lead())
    bad = CloudEvent(type=LEAD_CREATED, source="urn:t", data={**event.data, **change})
    with pytest.raises(MalformedEvent) as info:
        read(bad, LeadCreatedData)
    assert f"{LEAD_CREATED} {bad.id}: {where}:" in str(info.value)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"leadId": "l" * 41}, "data.leadId"),
        ({"customerId": ""}, "data.customerId"),
        ({"offerId": "o" * 81}, "data.offerId"),
        ({"decisionId": ""}, "data.decisionId"),
        ({"channel": "PRINT"}, "data.channel"),
        ({"response": "MAYBE"}, "data.response"),
        ({"response": None}, "data.response"),
        ({"at": "yesterday"}, "data.at"),
    ],
)
def test_a_bad_lead_response_is_malformed(change, where):
    event = lead_response_event(planned_lead())
    bad = CloudEvent(type=LEAD_RESPONSE, source="urn:t", data={**event.data, **change})
    with pytest.raises(MalformedEvent) as info:
        read(bad, LeadResponseData)
    assert f"{LEAD_RESPONSE} {bad.id}: {where}:" in str(info.value)


def test_a_lead_event_is_not_read_as_another_payload():
    event = lead_response_event(planned_lead())
    with pytest.raises(MalformedEvent, match="not an event carrying LeadCreatedData"):
        read(event, LeadCreatedData)


# --- privacy.*.requested: samples, built as hub.core.privacy builds them ------------------------------


def privacy_requested_event(kind: str) -> CloudEvent:
    """subject = the customer, correlationid = the privacy request."""
    customer_id = f"cus_{uuid.uuid4().hex[:20]}"
    request_id = f"prv_{uuid.uuid4().hex[:20]}"
    data = PrivacyRequested(requestId=request_id, customerId=customer_id, kind=kind, at=datetime.now(UTC))
    event_type = PRIVACY_ERASURE_REQUESTED if kind == "ERASURE" else PRIVACY_EXPORT_REQUESTED
    return make(event_type, data, source=Settings().source, subject=customer_id, correlationid=request_id)


@pytest.mark.parametrize("kind", ["ERASURE", "EXPORT"])
def test_privacy_requested_names_the_request_not_the_keys(doc, kind):
    event = privacy_requested_event(kind)
    envelope = event.to_dict()
    assert validate(doc, payload_schema(doc, event.type), envelope) == []
    assert correlation_of(doc, event.type) == doc["components"]["correlationIds"]["privacyRequest"]
    other = PRIVACY_EXPORT_REQUESTED if kind == "ERASURE" else PRIVACY_ERASURE_REQUESTED
    assert validate(doc, data_schema(doc, other), event.data)  # the kind fits its channel only
    assert set(event.data) == {"requestId", "customerId", "kind", "at"}


# --- customer.consent: a sample, built as hub.core.consents builds it --------------------------------


def consent_event(channel: Channel | None) -> CloudEvent:
    """subject = the customer; no correlationid."""
    from hub.model.privacy import ConsentPurpose

    customer_id = f"cus_{uuid.uuid4().hex[:20]}"
    data = ConsentData(customerId=customer_id, purpose=ConsentPurpose.MARKETING, channel=channel,
                       granted=False, at=datetime.now(UTC), source="unsubscribe")
    return make(CUSTOMER_CONSENT, data, source=Settings().source, subject=customer_id)


@pytest.mark.parametrize("channel", [None, Channel.EMAIL])
def test_customer_consent_validates(doc, channel):
    event = consent_event(channel)
    envelope = event.to_dict()
    assert validate(doc, payload_schema(doc, CUSTOMER_CONSENT), envelope) == []
    assert "correlationid" not in envelope
    schema = data_schema(doc, CUSTOMER_CONSENT)
    assert validate(doc, schema, {**event.data, "purpose": "SPAM"})
    assert validate(doc, schema, {**event.data, "channel": "PRINT"})  # letters have no consent of their own
    assert read(event, ConsentData).channel == channel
