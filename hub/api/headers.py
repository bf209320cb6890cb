"""Headers on every answer, and which other origins may call.

Every HTTP answer gets the standard security headers (kept where a route set its own): no MIME
sniffing, no referrer, never framed (X-Frame-Options and CSP frame-ancestors; no other CSP directive, so
GraphiQL's page still loads its scripts), and `Cache-Control: no-store` (answers hold customer data;
the hub's own answer cache is on the server).

CORS: `HUB_CORS_ORIGINS` (comma-separated origins, or `*`) may call over HTTP from a browser
(starlette's CORSMiddleware: GET and POST, the Authorization and Content-Type headers) and open the
websocket (strawberry's Origin check, which refuses other origins' handshakes with 403). Empty (the
default): same origin only.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.http.websocket_origin import normalize_allowed_origins

SECURITY_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("content-security-policy", "frame-ancestors 'none'"),
    ("cache-control", "no-store"),
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self._app(scope, receive, with_headers)


def cors_origins(setting: str) -> list[str]:
    """The origins of HUB_CORS_ORIGINS, checked (a path or a typo fails the start, naming it)."""
    given = [o.strip() for o in setting.split(",") if o.strip()]
    return sorted(normalize_allowed_origins(given))


def edge_middleware(cors: str) -> list[Middleware]:
    """Outermost first: the headers go on every answer, CORS's refusals and preflights included."""
    middleware = [Middleware(SecurityHeaders)]
    origins = cors_origins(cors)
    if origins:
        options: dict[str, Any] = {
            "allow_origins": origins,
            "allow_methods": ["GET", "POST"],
            "allow_headers": ["authorization", "content-type"],
            "max_age": 600,
        }
        middleware.append(Middleware(CORSMiddleware, **options))
    return middleware
