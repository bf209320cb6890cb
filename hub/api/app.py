"""The ASGI application: GraphQL at /graphql (HTTP GET/POST, graphql-transport-ws, GraphiQL), /healthz."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from hub.api.answers import AnswerCache, CachedAnswers
from hub.api.context import Context
from hub.api.extensions import ensure_code
from hub.api.links import routes as link_routes
from hub.api.schema import build_schema
from hub.config import Settings
from hub.config.watch import MappingWatcher
from hub.ports import Health
from hub.runtime import Hub

HEALTH_TIMEOUT = 5.0


async def _health(adapter: Any) -> Health:
    """A system's health, bounded: a hanging system is reported down, not waited for."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            return await adapter.check()
    except TimeoutError:
        return Health(False, f"no answer within {HEALTH_TIMEOUT:g}s")
    except Exception as exc:
        return Health(False, type(exc).__name__)


class HubGraphQL(GraphQL[Context, None]):
    def __init__(self, hub: Hub):
        super().__init__(
            build_schema(hub.settings.max_query_depth),
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            keep_alive=True,
            keep_alive_interval=15,
        )
        self.hub = hub

    async def get_context(self, request: Request | WebSocket, response: object) -> Context:
        return Context(self.hub)

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
    http_graphql = CachedAnswers(graphql, answers, lambda: hub.wiring.version, hub.settings.max_body_bytes)

    async def healthz(_: Request) -> JSONResponse:
        systems = hub.systems
        names = list(systems.adapters)
        results = await asyncio.gather(*(_health(systems.adapters[n]) for n in names))
        checks = {}
        for name, health in zip(names, results, strict=True):
            essential = systems.mapping.systems[name].essential
            checks[name] = {"ok": health.ok, "detail": health.detail, "essential": essential}
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
            # ten times rarer than Python's default. Cycles still die young in the first two generations.
            gc.set_threshold(700, 10, 100)
        try:
            yield
        finally:
            if watcher is not None:
                await watcher.stop()
            if owned:
                await hub.close()

    app = Starlette(
        routes=[
            Route("/graphql", http_graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            *link_routes(hub),
        ],
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.answers = answers
    return app
