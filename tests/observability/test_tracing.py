"""OpenTelemetry traces, on both bus engines: one trace from the HTTP request through the GraphQL
operation and the calls to systems, into the outbox, across the bus (the CloudEvent carries the W3C
traceparent) and into the consumer that applies the event for CM."""

from __future__ import annotations

import orjson
from opentelemetry.trace import SpanKind

from hub.events import CloudEvent
from hub.observability import tracing
from hub.store.tables import outbox
from tests.support import RECORD, START, gql

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


def by_id(spans) -> dict[int, object]:
    return {s.context.span_id: s for s in spans}


def ancestors(span, spans) -> list:
    """The span's parents, nearest first (within the finished spans)."""
    known = by_id(spans)
    chain = []
    while span.parent is not None and span.parent.span_id in known:
        span = known[span.parent.span_id]
        chain.append(span)
    return chain


async def test_one_trace_from_the_http_request_across_the_bus_into_cm(spans, api, hub):
    started = (await gql(api, START, {"input": {"channel": "WEBSITE", "identification": {"email": "trace@example.com"}}}))["startContact"]
    offer = started["nextBestActions"][0]["offerId"]
    spans.clear()
    response = await api.post(
        "/graphql",
        json={"query": RECORD, "variables": {"contactId": started["contact"]["id"],
                                               "events": [{"type": "PROPOSITION_SHOWN", "offerId": offer}]}},
        headers={"traceparent": CALLER},  # the caller's trace goes on
    )
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    event_id = response.json()["data"]["recordContactEvents"]["eventIds"][0]

    # The event took the trace context into the outbox: the CloudEvent's own attributes.
    async with hub.engine.connect() as conn:
        body = (await conn.execute(outbox.select().where(outbox.c.event_id == event_id))).one().body
    stored = orjson.loads(body)
    assert stored["traceparent"].split("-")[1] == CALLER_TRACE
    assert CloudEvent.from_json(body).traceparent == stored["traceparent"]

    await hub.settle(timeout=30)
    finished = spans.get_finished_spans()
    http = [s for s in finished if s.kind is SpanKind.SERVER]
    assert [s.name for s in http] == ["POST /graphql"]
    assert http[0].context.trace_id == int(CALLER_TRACE, 16)
    assert http[0].attributes["http.response.status_code"] == 200
    operation = [s for s in finished if s.name == "mutation Record"]
    assert len(operation) == 1, [s.name for s in finished]  # one span per operation, none per field
    assert ancestors(operation[0], finished)[0] is http[0]
    consumer = [
        s for s in finished
        if s.kind is SpanKind.CONSUMER and s.attributes.get("hub.system") == "cm"
        and s.attributes.get("cloudevents.event_id") == event_id
    ]
    assert consumer, [(s.name, s.kind, dict(s.attributes)) for s in finished]
    chain = ancestors(consumer[0], finished)
    assert http[0] in chain  # the consumer's span descends from the HTTP request's
    assert operation[0] in chain
    assert all(s.context.trace_id == http[0].context.trace_id for s in chain)
    # CM's handling of it, inside the consumer's span.
    handled = [s for s in finished if s.name == "cm consume" and s.parent and s.parent.span_id == consumer[0].context.span_id]
    assert handled
    # The relay's hand-over to the bus, in the same trace.
    published = [s for s in finished if s.kind is SpanKind.PRODUCER and s.attributes.get("cloudevents.event_id") == event_id]
    assert published and published[0].context.trace_id == http[0].context.trace_id


async def test_calls_to_systems_are_spans_of_the_operation(spans, api, hub):
    started = (await gql(api, START, {"input": {"channel": "WEBSITE", "identification": {"email": "trace2@example.com"}}}))["startContact"]
    hub.cache.clear()  # read afresh: the calls happen
    spans.clear()
    await gql(api, "query Look($id: ID!) { customer(id: $id) { name nextBestActions { offerId } } }",
              {"id": started["customer"]["id"]})
    finished = spans.get_finished_spans()
    operation = next(s for s in finished if s.name == "query Look")
    calls = [s for s in finished if s.kind is SpanKind.CLIENT and s.attributes.get("hub.call") in ("fetch", "decide")]
    assert {s.attributes["hub.system"] for s in calls} >= {"crm", "cm"}
    for call in calls:
        assert operation in ancestors(call, finished)


async def test_tracing_off_makes_no_spans_and_stamps_nothing(api, hub):
    assert not tracing.ENABLED
    event = CloudEvent(type="contact.proposition.shown", source="urn:test", data={})
    assert tracing.stamped([event]) == [event]
    assert "traceparent" not in event.to_dict()
    started = (await gql(api, START, {"input": {"channel": "WEBSITE", "identification": {"email": "untraced@example.com"}}}))["startContact"]
    assert started["contact"]["id"]
    async with hub.engine.connect() as conn:
        bodies = [r.body for r in await conn.execute(outbox.select())]
    assert bodies and all(b"traceparent" not in body for body in bodies)


def test_tracing_follows_the_otel_variables(monkeypatch):
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert not tracing.wanted()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing.wanted()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing.wanted()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    assert tracing.wanted()


def test_a_malformed_traceparent_does_not_make_the_event_unreadable():
    raw = CloudEvent(type="t.x", source="urn:test", data={}).to_dict()
    event = CloudEvent.from_dict({**raw, "traceparent": 42, "tracestate": ["x"]})
    assert event.traceparent is None and event.tracestate is None
    event = CloudEvent.from_dict({**raw, "traceparent": "garbage"})
    assert tracing._context_of(event) is None


def test_a_traced_envelope_is_what_schema_asyncapi_documents(spans):
    """The trace context as CloudEvent extension attributes: documented in schema/asyncapi.yaml."""
    import yaml

    from tests.unit.test_asyncapi import ASYNCAPI, collect, payload_schema, validate

    doc = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    event = CloudEvent(type="contact.banner.click", source="urn:markiting-hub", data={})
    opened = tracing.start("test")
    try:
        (traced,) = tracing.stamped([event])
    finally:
        tracing.end_span(opened)
    envelope = traced.to_dict()
    assert envelope["traceparent"].split("-")[1] == format(opened.span.get_span_context().trace_id, "032x")
    envelope_schema = doc["components"]["schemas"]["CloudEvent"]
    assert validate(doc, envelope_schema, envelope) == []
    assert {"traceparent", "tracestate"} <= collect(doc, payload_schema(doc, "contact.banner.click"), "properties")
    assert validate(doc, envelope_schema, {**envelope, "traceparent": "not-a-traceparent"})
