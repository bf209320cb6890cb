"""The ASGI application: GraphQL at /graphql (HTTP GET/POST, graphql-transport-ws, GraphiQL), /healthz."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from hub.api.context import Context
from hub.api.schema import build_schema, ensure_code
from hub.config import Settings
from hub.runtime import Hub


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

    async def healthz(_: Request) -> JSONResponse:
        checks = {}
        for name, adapter in hub.systems.adapters.items():
            try:
                health = await adapter.check()
                checks[name] = {"ok": health.ok, "detail": health.detail}
            except Exception as exc:
                checks[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        ok = all(c["ok"] for c in checks.values())
        return JSONResponse({"ok": ok, "systems": checks}, status_code=200 if ok else 503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if owned:
            await hub.start()
            if hub.settings.demo:
                from hub.demo import load_demo

                await load_demo(hub)
        try:
            yield
        finally:
            if owned:
                await hub.close()

    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )
    app.state.hub = hub
    return app
