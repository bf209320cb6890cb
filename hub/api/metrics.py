"""Metrics and traces at the edge: the GraphQL extension that measures (and traces) each operation, the
`/metrics` endpoint (operators only: scope `operations:read`), and the sampler that keeps the gauges
that are read rather than counted (outbox backlog and relay lag, circuit breakers) current.

The metrics themselves and their names are hub.observability.metrics; README "Metrics and traces"."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLError
from sqlalchemy import func, select
from starlette.middleware import Middleware
from starlette.routing import Route
from strawberry.extensions import SchemaExtension

from hub.api.auth import PRINCIPAL, Authenticate, Scope, Send, _header, refuse
from hub.config import Settings
from hub.core.errors import Forbidden, Unauthenticated
from hub.observability import logs, metrics, tracing
from hub.security.gate import Security
from hub.security.scopes import OPERATIONS_READ
from hub.store.db import reading
from hub.store.tables import outbox
from hub.waiting import Periodic

log = logging.getLogger("hub.api")
SAMPLE_SECONDS = 5.0


class Observe(SchemaExtension):
    """Per GraphQL operation: its latency by operation name and type, the codes of its errors, a span
    (when tracing is on; one per operation, not per field) and the operation name for the log lines."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        opened = tracing.start("graphql operation") if tracing.ENABLED else None
        try:
            yield
        finally:
            ctx = self.execution_context
            name = metrics.operation_label(ctx.operation_name)
            try:
                kind = ctx.operation_type.value
            except Exception:  # not parsed, or no such operation in the document
                kind = "unknown"
            result = ctx.result
            errors: list[GraphQLError] = list(
                (result.errors if result is not None else None) or ctx.pre_execution_errors or ()
            )
            codes = [str((e.extensions or {}).get("code", "INTERNAL")) for e in errors]
            metrics.graphql_operation(name, kind, time.perf_counter() - started, codes)
            if opened is not None:
                opened.span.update_name(f"{kind} {name}")
                opened.span.set_attribute("graphql.operation.name", name)
                opened.span.set_attribute("graphql.operation.type", kind)
                if codes:
                    opened.span.set_attribute("hub.error_codes", sorted(set(codes)))
                tracing.end_span(opened, "error" if codes else "ok", ",".join(sorted(set(codes))) or None)

    def on_execute(self) -> Iterator[None]:
        token = logs.OPERATION.set(metrics.operation_label(self.execution_context.operation_name))
        try:
            yield
        finally:
            logs.OPERATION.reset(token)


class MetricsEndpoint:
    """GET /metrics: the text exposition format, for a caller whose credential has `operations:read`
    (401 without a credential the hub accepts, 403 without the scope; with HUB_AUTH=off, anyone)."""

    def __init__(self, security: Callable[[], Security]):
        self._security = security

    async def __call__(self, scope: Scope, receive: Any, send: Send) -> None:
        principal = scope.get(PRINCIPAL)
        if principal is None:  # a browser's GET for HTML passes Authenticate untouched (GraphiQL's rule)
            try:
                principal = await self._security().authn.principal(_header(scope, b"authorization"))
            except Unauthenticated as exc:
                await refuse(send, 401, exc, [(b"www-authenticate", b'Bearer realm="markiting-hub"')])
                return
        if not principal.allows(OPERATIONS_READ):
            await refuse(send, 403, Forbidden(f"/metrics needs the scope {OPERATIONS_READ}"), [])
            return
        body, kind = await metrics.exposition()
        headers = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def routes(hub: Any) -> list[Route]:
    """`/metrics` on the hub's port, unless HUB_METRICS_PORT moves it to a listener of its own."""
    if hub.settings.metrics_port:
        return []
    return [Route("/metrics", Authenticate(MetricsEndpoint(lambda: hub.security), lambda: hub.security),
                  methods=["GET"])]


class Observer:
    """What runs beside a serving hub: the sampler and, with HUB_METRICS_PORT, the metrics listener."""

    def __init__(self, hub: Any):
        self._hub = hub
        self._sampler = Periodic("metrics sampler", SAMPLE_SECONDS, self.sample)
        self._server: asyncio.Server | None = None

    async def start(self) -> Observer:
        settings: Settings = self._hub.settings
        if settings.metrics_port:
            self._server = await metrics.serve_port(settings.metrics_host, settings.metrics_port)
        metrics.reap_dead()
        self._sampler.start()
        return self

    async def stop(self) -> None:
        await self._sampler.stop()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        tracing.flush()

    async def sample(self) -> None:
        """The gauges: outbox backlog and relay lag (one read of the store), circuit breakers."""
        hub = self._hub
        async with reading(hub.engine).connect() as conn:
            row = (
                await conn.execute(
                    select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.sent_at.is_(None))
                )
            ).one()
        backlog, oldest = int(row[0]), row[1]
        lag = 0.0
        if oldest is not None:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
            lag = max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        metrics.outbox(backlog, lag)
        for name, adapter in hub.systems.adapters.items():
            breaker = getattr(adapter, "breaker", None)
            if breaker is not None:
                metrics.breaker_state(name, getattr(breaker, "state", None))
        metrics.reap_dead()


async def start_observing(hub: Any) -> Observer:
    return await Observer(hub).start()


def tracing_middleware() -> Middleware:
    """The app's outermost layer: a server span per HTTP request while tracing is on. Turns tracing on
    first when the OTEL_* variables ask for it (once per process: each worker builds its app)."""
    tracing.setup()
    return Middleware(tracing.TracedHTTP)
