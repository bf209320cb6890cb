"""The ASGI application: GraphQL at /graphql (HTTP GET/POST, graphql-transport-ws, GraphiQL), /healthz."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from datetime import timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from hub.api.answers import AnswerCache, CachedAnswers
from hub.api.auth import CLOSE_CODE, PRINCIPAL, Authenticate
from hub.api.context import Context
from hub.api.errors import public_detail, scrub
from hub.api.extensions import ensure_code
from hub.api.graphiql import routes as graphiql_routes
from hub.api.headers import cors_origins, edge_middleware
from hub.api.health import bounded_health as _health
from hub.api.links import routes as link_routes
from hub.api.metrics import routes as metrics_routes
from hub.api.metrics import start_observing, tracing_middleware
from hub.api.ops import routes as ops_routes
from hub.api.schema import build_schema
from hub.api.transport import EdgeGraphQL
from hub.config import Settings
from hub.config.watch import MappingWatcher
from hub.core.errors import Unauthenticated
from hub.runtime import Hub
from hub.security.gate import credential
from hub.security.principal import NOBODY

log = logging.getLogger("hub.api")


class HubGraphQL(EdgeGraphQL):
    def __init__(self, hub: Hub):
        super().__init__(
            build_schema(hub.settings),
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            keep_alive=True,
            keep_alive_interval=15,
            # hub.api.headers: HUB_CORS_ORIGINS; hub.api.transport: the connection_init wait.
            allowed_origins=cors_origins(hub.settings.cors_origins),
            connection_init_wait_timeout=timedelta(seconds=hub.settings.ws_init_timeout_seconds),
        )
        self.hub = hub

    async def get_context(self, request: Request | WebSocket, response: object) -> Context:
        # HTTP: authenticated by hub.api.auth before the body was read. A websocket: not yet (below).
        principal = request.scope.get(PRINCIPAL, NOBODY)
        context = Context(self.hub, principal)
        context.connection = request
        return context

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        """graphql-transport-ws `connection_init`: the credential is in its payload
        (`{"authorization": "Bearer …"}`) or in the upgrade's Authorization header."""
        socket = context.connection
        assert socket is not None
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        given = params.get("authorization") or params.get("Authorization")
        given = given or socket.headers.get("authorization")
        security = self.hub.security
        try:
            principal = await security.authn.principal(given if isinstance(given, str) else None)
        except Unauthenticated:
            socket.scope[CLOSE_CODE] = 4401
            raise ConnectionRejectionError() from None
        client = socket.client.host if socket.client else None
        who = credential(principal, client)
        if security.connections[who] >= security.max_connections:
            socket.scope[CLOSE_CODE] = 4429
            raise ConnectionRejectionError()
        security.connections[who] += 1
        socket.scope[PRINCIPAL] = principal
        context.principal = principal
        return None

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        for error in result.errors or ():
            ensure_code(error)
        return await super().process_result(request, result)


def create_app(settings: Settings | None = None, hub: Hub | None = None) -> Starlette:
    """The app owns the hub's lifetime unless a started hub is handed in."""
    owned = hub is None
    hub = hub or Hub(settings)
    graphql = HubGraphQL(hub)
    answers = AnswerCache(hub.settings.answer_cache_entries, hub.settings.answer_max_bytes)
    settings = hub.settings
    http_graphql = CachedAnswers(
        graphql, answers, lambda: hub.wiring.version, settings.max_body_bytes, settings.body_timeout_seconds
    )
    protected_http = Authenticate(http_graphql, lambda: hub.security)
    protected_ws = Authenticate(graphql, lambda: hub.security)

    async def healthz(_: Request) -> JSONResponse:
        systems = hub.systems
        names = list(systems.adapters)
        results = await asyncio.gather(*(_health(systems.adapters[n]) for n in names))
        checks = {}
        for name, health in zip(names, results, strict=True):
            essential = systems.mapping.systems[name].essential
            if not health.ok:  # the whole reason to the log (no SQL parameters); the open answer a safe part
                log.info("health check of system %s failed: %s", name, scrub(health.detail or ""))
            checks[name] = {"ok": health.ok, "detail": public_detail(health.detail), "essential": essential}
        # The hub serves while non-essential systems are down (partial data): it is healthy unless an
        # essential one is; `degraded` tells operators that some answers are partial.
        ok = all(c["ok"] for c in checks.values() if c["essential"])
        degraded = not all(c["ok"] for c in checks.values())
        body = {
            "ok": ok,
            "degraded": degraded,
            "mappingVersion": hub.wiring.version,
            "process": os.getpid(),  # which hub process answered (with --workers, one of several)
            "systems": checks,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        watcher = None
        if owned:
            await hub.start()
            if hub.settings.demo:
                from hub.demo import load_demo

                await load_demo(hub)
            watcher = MappingWatcher(
                hub.reload, hub.settings.mappings_dir, on_change=hub.settings.reload_on_change
            )
            watcher.start()
            # What start-up made (modules, schema, mapping) lives as long as the process: out of the
            # collector's sight, so full collections stay short pauses on the request path.
            gc.collect()
            gc.freeze()
            # A full collection walks every cached read (25-77 ms measured under the freshness load):
            # ten times rarer than Python's default. A young collection every 10,000 allocations, not 700:
            # a request's objects mostly die before one, so far fewer are walked and promoted (start-contact:
            # collections 9 % of the CPU before, bench/RESULTS.md). Cycles still die young.
            gc.set_threshold(10_000, 10, 100)
        observer = await start_observing(hub)  # metrics sampler, HUB_METRICS_PORT (hub.api.metrics)
        try:
            yield
        finally:
            await observer.stop()
            if watcher is not None:
                await watcher.stop()
            if owned:
                await hub.close()

    app = Starlette(
        routes=[
            Route("/graphql", protected_http, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", protected_ws),
            Route("/healthz", healthz),
            *link_routes(hub),
            *ops_routes(hub),  # the operations and marketing page at /ops (hub.api.ops)
            *graphiql_routes(),  # GraphiQL's assets, served by the hub (no CDN)
            *metrics_routes(hub),
        ],
        lifespan=lifespan,
        # a span per request when tracing is on (outermost), then security headers, CORS
        middleware=[tracing_middleware(), *edge_middleware(hub.settings.cors_origins)],
    )
    app.state.hub = hub
    app.state.answers = answers
    return app
