"""OpenTelemetry traces: one trace from an HTTP request through its GraphQL operation and the hub's calls
to systems, into the outbox, across the bus and into the consumer that applies the event.

Off by default. `setup()` turns it on when the standard variables ask for it: OTEL_TRACES_EXPORTER
(`otlp`, `console`; `none` keeps it off) or OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
(then OTLP over HTTP/protobuf; OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS …
are read by the SDK itself). Tests hand in an exporter (`setup(exporter=InMemorySpanExporter())`).

Off, the hot paths check `ENABLED` once and make no span objects. On, the spans are:
- `POST /graphql` (server): hub.observability.tracing.TracedHTTP, continuing an incoming `traceparent`;
- `query customer`, `mutation startContact` (one per operation, not per field): hub.api.metrics;
- `crm fetch`, `cm decide`, `cm consume` (client): every call to a system (metrics.system_call);
- `publish contact.response` (producer): the outbox relay handing the event to the bus;
- `cm process contact.response` (consumer): the idempotent consumer, whose parent is the context the
  event carries: W3C `traceparent`/`tracestate` written into the CloudEvent when it entered the outbox,
  as the CloudEvents distributed-tracing extension says (extension attributes of the envelope).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

T = TypeVar("T")
ENABLED = False  # read by the hot paths: no span is made while it is False
SERVICE = "markiting-hub"

_propagator = TraceContextTextMapPropagator()
_tracer: trace.Tracer = trace.NoOpTracer()
_provider: Any = None


def wanted() -> bool:
    """Do the standard OTEL_* variables ask for traces?"""
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def setup(exporter: Any = None) -> bool:
    """Turn tracing on: with `exporter` (spans handed over as each ends: tests), or as the environment
    says (batched export). Does nothing when it is on already, or when nothing asks for it."""
    global ENABLED, _tracer, _provider
    if ENABLED:
        return True
    if exporter is None and not wanted():
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(","):
            provider.add_span_processor(BatchSpanProcessor(_exporter(name.strip())))
    _provider = provider
    _tracer = provider.get_tracer("hub")
    ENABLED = True
    return True


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name not in ("otlp", "otlp_proto_http", ""):
        raise ValueError(f"OTEL_TRACES_EXPORTER={name!r}: the hub ships `otlp` (HTTP/protobuf) and `console`")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def shutdown() -> None:
    """Flush and turn tracing off (the process ends, or a test is done)."""
    global ENABLED, _tracer, _provider
    provider, _provider = _provider, None
    ENABLED = False
    _tracer = trace.NoOpTracer()
    if provider is not None:
        provider.shutdown()


def tracer() -> trace.Tracer:
    return _tracer


# --- spans ------------------------------------------------------------------------------------------


class Open:
    """A started span made current; `end_span` ends it and restores the context before it."""

    __slots__ = ("span", "token")

    def __init__(self, span: trace.Span, token: object):
        self.span = span
        self.token = token


def start(name: str, kind: SpanKind = SpanKind.INTERNAL, parent: Any = None, **attributes: Any) -> Open:
    span = _tracer.start_span(name, context=parent, kind=kind, attributes=attributes or None)
    return Open(span, otel_context.attach(trace.set_span_in_context(span, parent)))


def end_span(opened: Open, outcome: str = "ok", error: str | None = None) -> None:
    if outcome != "ok":
        opened.span.set_status(Status(StatusCode.ERROR, error or outcome))
    opened.span.end()
    otel_context.detach(opened.token)  # type: ignore[arg-type]


def system_span(system: str, call: str) -> Open:
    return start(f"{system} {call}", SpanKind.CLIENT, **{"hub.system": system, "hub.call": call})


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) as hex of the current span, None when there is none."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


# --- HTTP ---------------------------------------------------------------------------------------------

_NAMED_PATHS = frozenset({"/graphql", "/metrics", "/healthz", "/ops"})


class TracedHTTP:
    """ASGI: a server span per HTTP request (continuing the caller's `traceparent`), current while the
    app handles it. Its name is the method and the path for the hub's fixed endpoints, the method alone
    otherwise (a link's path holds a lead code)."""

    def __init__(self, app: Callable[..., Awaitable[None]]):
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if not ENABLED or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {}
        for key, value in scope.get("headers", ()):
            if key in (b"traceparent", b"tracestate"):
                carrier[key.decode()] = value.decode("latin-1")
        parent = _propagator.extract(carrier) if carrier else None
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        named = path in _NAMED_PATHS or path.startswith("/ops/")
        opened = start(
            f"{method} {path}" if named else method, SpanKind.SERVER, parent,
            **{"http.request.method": method, **({"url.path": path} if named else {})},
        )
        status = 0

        async def sent(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            opened.span.set_attribute("http.response.status_code", status)
            end_span(opened, "ok" if 0 < status < 500 else "error", f"HTTP {status}" if status else None)


# --- CloudEvents: the distributed-tracing extension ---------------------------------------------------


def stamped(events: Sequence[T]) -> Sequence[T]:
    """The events with the current trace context as their `traceparent`/`tracestate` (when tracing is on
    and they carry none yet): they take it into the outbox and across the bus."""
    if not ENABLED:
        return events
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    parent = carrier.get("traceparent")
    if parent is None:
        return events
    state = carrier.get("tracestate")
    return [
        e if getattr(e, "traceparent", None) else dataclasses.replace(e, traceparent=parent, tracestate=state)  # type: ignore[type-var]
        for e in events
    ]


def _context_of(event: Any) -> Any:
    parent = getattr(event, "traceparent", None)
    if not parent:
        return None
    carrier = {"traceparent": parent}
    state = getattr(event, "tracestate", None)
    if state:
        carrier["tracestate"] = state
    ctx = _propagator.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


async def publishing(events: Sequence[Any], awaitable: Awaitable[T]) -> T:
    """Await the publishing of `events` with a producer span per event that carries a trace context."""
    if not ENABLED:
        return await awaitable
    spans = []
    for event in events:
        parent = _context_of(event)
        if parent is not None:
            spans.append(
                _tracer.start_span(
                    f"publish {event.type}", context=parent, kind=SpanKind.PRODUCER,
                    attributes={"messaging.operation.type": "publish", "cloudevents.event_id": event.id,
                                "cloudevents.event_type": event.type},
                )
            )
    try:
        return await awaitable
    finally:
        for span in spans:
            span.end()


def consumer(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """For a consumer's `__call__(event)` and `batch(events)`: a consumer span whose parent is the
    context the (first) event carries, linked to the others' (a batch may join several traces). The
    consumer names its destination system in `self.destination`."""

    @functools.wraps(method)
    async def traced(self: Any, events: Any) -> T:
        if not ENABLED:
            return await method(self, events)
        many = isinstance(events, Sequence)
        listed = list(events) if many else [events]
        contexts = [c for c in map(_context_of, listed) if c is not None]
        parent = contexts[0] if contexts else None
        links = [Link(trace.get_current_span(c).get_span_context()) for c in contexts[1:]]
        first = listed[0] if listed else None
        kind = getattr(first, "type", "") if not many or len(listed) == 1 else "batch"
        destination = getattr(self, "destination", "?")
        span = _tracer.start_span(
            f"{destination} process {kind}".rstrip(), context=parent, kind=SpanKind.CONSUMER, links=links,
            attributes={"messaging.operation.type": "process", "hub.system": destination,
                        "messaging.batch.message_count": len(listed),
                        "cloudevents.event_id": getattr(first, "id", "") if len(listed) == 1 else ""},
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            return await method(self, events)
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()
            otel_context.detach(token)

    return traced


def flush() -> None:
    """Export what has ended so far (a serving process stops)."""
    if _provider is not None:
        _provider.force_flush()
