"""ASGI in front of the protected endpoints: who calls (401 without a credential the hub accepts), how
often (429 past the rate limit), and, for websockets, the close code and the per-credential count.

HTTP requests are authenticated here, before the body is read; the caller travels in the ASGI scope
(`hub.principal`) to the GraphQL context. A websocket authenticates in its `connection_init` (browsers
cannot set headers on an upgrade; HubGraphQL.on_ws_connect), and a refused one closes with 4401.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from hub.core.errors import HubError, RateLimited, Unauthenticated
from hub.security.gate import Security, credential

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PRINCIPAL = "hub.principal"
CLOSE_CODE = "hub.close_code"  # set by on_ws_connect: the code a rejected websocket closes with


def error_body(error: HubError) -> bytes:
    return orjson.dumps({"errors": [{"message": error.message, "extensions": error.extensions}]})


async def refuse(send: Send, status: int, error: HubError, headers: list[tuple[bytes, bytes]]) -> None:
    body = error_body(error)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _is_ide_page(scope: Scope) -> bool:
    """GraphiQL's page itself (a GET for HTML without a query): static, no data; its requests carry
    the credential the user enters in its headers pane."""
    return (
        scope["method"] == "GET"
        and not scope.get("query_string")
        and "text/html" in (_header(scope, b"accept") or "")
    )


async def _too_many(send: Send, wait: float) -> None:
    seconds = max(1, math.ceil(wait))
    error = RateLimited(f"rate limit reached; retry in {seconds}s", retryAfter=seconds)
    await refuse(send, 429, error, [(b"retry-after", str(seconds).encode())])


class Authenticate:
    def __init__(self, app: ASGIApp, security: Callable[[], Security]):
        self._app = app
        self._parts = security  # the hub's, once it started

    @property
    def _security(self) -> Security:
        return self._parts()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http" or _is_ide_page(scope):
            await self._app(scope, receive, send)
            return
        security = self._security
        client = scope.get("client")
        address = client[0] if client else "-"
        authorization = _header(scope, b"authorization")
        principal = security.authn.known(authorization)
        if principal is None:
            # Failed credentials count against the caller's address: guessing keys (or making the hub
            # look up made-up ones) is held to the rate limit too, before any work. A credential this
            # process verified before is never held up by others' failures from the same address.
            wait = security.limiter.exhausted(f"failed:{address}")
            # A key verified before whose cached entry was dropped (a key made or revoked) is looked up
            # again: only the exact credentials this process accepted once get past others' guesses.
            if wait is not None and not security.authn.verified_before(authorization):
                await _too_many(send, wait)
                return
            try:
                principal = await security.authn.principal(authorization)
            except Unauthenticated as exc:
                security.limiter.take(f"failed:{address}")
                await refuse(send, 401, exc, [(b"www-authenticate", b'Bearer realm="markiting-hub"')])
                return
        wait = security.limiter.take(credential(principal, address))
        if wait is not None:
            await _too_many(send, wait)
            return
        scope[PRINCIPAL] = principal
        await self._app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def closing(message: Message) -> None:
            # strawberry closes a rejected connection_init with 4403; the hub says why: 4401 or 4429.
            if message["type"] == "websocket.close" and CLOSE_CODE in scope:
                message = {**message, "code": scope.pop(CLOSE_CODE)}
            await send(message)

        try:
            await self._app(scope, receive, closing)
        finally:
            principal = scope.get(PRINCIPAL)
            if principal is not None:  # counted by on_ws_connect
                client = scope.get("client")
                who = credential(principal, client[0] if client else None)
                self._security.connections[who] -= 1
                if self._security.connections[who] <= 0:
                    del self._security.connections[who]
