"""A real HTTP server that plays an external loyalty/CRM system for the REST adapter's tests.

It runs in the test's event loop (uvicorn on 127.0.0.1, a free port), records every request it gets
with its arrival time, and does what the test tells it: answer slowly, fail with a status (with a
Retry-After), require each kind of credentials, issue OAuth2 tokens, page its answers, and apply
events once per idempotency key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import itertools
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN_PATH = "/oauth/token"
CLIENT_ID, CLIENT_SECRET = "hub-client", "client-secret-Zx81!"


@dataclass(frozen=True, slots=True)
class Hit:
    at: float  # time.monotonic() on arrival
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeSystem:
    """The behaviour knobs; tests set them between calls."""

    members: dict[str, dict[str, Any]] = field(default_factory=dict)  # by email, lower case
    hits: list[Hit] = field(default_factory=list)
    delay: float = 0.0  # seconds before every answer (not the token endpoint)
    fail: list[int] = field(default_factory=list)  # statuses for the next requests, first first
    fail_always: int | None = None
    retry_after: str | None = None  # sent with every failure from `fail` / `fail_always`
    page_size: int = 2
    # auth: None, ("bearer", token), ("api_key", header, key), ("basic", user, password), ("oauth2",)
    auth: tuple[str, ...] | None = None
    token_ttl: int | None = 3600
    tokens: dict[str, float] = field(default_factory=dict)  # issued token -> expiry (monotonic)
    token_requests: list[Hit] = field(default_factory=list)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # idempotency key -> event
    event_status: int | None = None  # forced answer of POST /events
    event_gate: asyncio.Event | None = None  # POST /events waits for it (a system that takes its time)
    events_waiting: int = 0
    event_reject_detail: str = "schema mismatch: data.offerId is required"
    echo_headers: bool = False  # a rejection quotes the request's credentials, as some servers do
    gzip: bool = False  # batch answers gzipped (Content-Encoding: gzip) when the client accepts it
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # --- what tests ask ------------------------------------------------------------------------------

    def requests(self, path: str | None = None) -> list[Hit]:
        return [h for h in self.hits if path is None or h.path == path or h.path.startswith(f"{path}/")]

    def add(self, email: str, **fields: Any) -> dict[str, Any]:
        record = {"email": email, **fields}
        self.members[email.lower()] = record
        return record

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    # --- the app -----------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(TOKEN_PATH, self._token, methods=["POST"]),
                Route("/health", self._health),
                Route("/", self._root),
                Route("/members/{email}", self._member),
                Route("/members", self._members),
                Route("/search", self._search, methods=["POST"]),
                Route("/pages/{style}", self._pages, methods=["GET", "POST"]),
                Route("/events", self._event, methods=["POST"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    def __post_init__(self) -> None:
        self._app = self._guard(self.app())

    def _guard(self, app: Starlette) -> Any:
        """Records the request, then delays, fails or refuses it as told, before the routes see it."""

        async def asgi(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            request = Request(scope, receive)
            body = await request.body()
            hit = Hit(
                time.monotonic(), request.method, request.url.path, request.url.query,
                {k.lower(): v for k, v in request.headers.items()}, body,
            )

            async def replay() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            if hit.path == TOKEN_PATH:
                self.token_requests.append(hit)
                await app(scope, replay, send)
                return
            self.hits.append(hit)
            if self.delay:
                # Cut short when the server stops, so a test's teardown does not wait for it.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.delay):
                        await self.stopping.wait()
            status = self.fail.pop(0) if self.fail else self.fail_always
            if status is not None:
                headers = {"Retry-After": self.retry_after} if self.retry_after else {}
                await JSONResponse({"error": "failing on purpose"}, status, headers)(scope, replay, send)
                return
            if not self._authorized(hit.headers):
                await JSONResponse({"error": "unauthorized"}, 401)(scope, replay, send)
                return
            await app(scope, replay, send)

        return asgi

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.auth is None:
            return True
        kind = self.auth[0]
        given = headers.get("authorization", "")
        if kind == "bearer":
            return given == f"Bearer {self.auth[1]}"
        if kind == "api_key":
            return headers.get(self.auth[1].lower()) == self.auth[2]
        if kind == "basic":
            expected = base64.b64encode(f"{self.auth[1]}:{self.auth[2]}".encode()).decode()
            return given == f"Basic {expected}"
        if kind == "oauth2":
            token = given.removeprefix("Bearer ")
            expires = self.tokens.get(token)
            return given.startswith("Bearer ") and expires is not None and time.monotonic() < expires
        raise AssertionError(f"unknown auth kind {kind}")

    async def _token(self, request: Request) -> Response:
        # Parsed by hand: starlette's form parser needs python-multipart, which the hub does not use.
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        given = request.headers.get("authorization", "")
        if given.startswith("Basic "):
            client_id, _, secret = base64.b64decode(given[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        if client_id != CLIENT_ID or secret != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client"}, 401)
        token = f"tok-{next(self._counter)}-Qm7"
        self.tokens[token] = time.monotonic() + (self.token_ttl or 10**6)
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "scope": form.get("scope")}
        if self.token_ttl is not None:
            body["expires_in"] = self.token_ttl
        return JSONResponse(body)

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "up"})

    async def _root(self, request: Request) -> Response:
        return JSONResponse({"error": "no such resource"}, 404)

    async def _member(self, request: Request) -> Response:
        record = self.members.get(request.path_params["email"].lower())
        if record is None:
            return JSONResponse({"error": "unknown member"}, 404)
        return JSONResponse({"member": record})

    def _found(self, keys: list[str]) -> list[dict[str, Any]]:
        return [self.members[k.lower()] for k in keys if k.lower() in self.members]

    async def _members(self, request: Request) -> Response:
        ids = [k for k in request.query_params.get("ids", "").split(",") if k]
        answer = JSONResponse({"items": self._found(ids), "count": len(ids)})
        if self.gzip and "gzip" in request.headers.get("accept-encoding", ""):
            body = gzip.compress(bytes(answer.body))
            return Response(body, media_type="application/json", headers={"Content-Encoding": "gzip"})
        return answer

    async def _search(self, request: Request) -> Response:
        body = await request.json()
        return JSONResponse({"data": {"items": self._found(body["query"]["emails"])}})

    async def _pages(self, request: Request) -> Response:
        """The found records in pages of `page_size` (or per_page); how the next page is told
        depends on the style in the path."""
        style = request.path_params["style"]
        q = dict(request.query_params)
        body = await request.json() if request.method == "POST" else {}
        params = {**q, **body}
        keys = body.get("emails") or [k for k in q.get("ids", "").split(",") if k]
        found = self._found(keys)
        size = int(params.get("per_page", self.page_size))
        if style == "cursor":
            start = int(params.get("cursor") or 0)
        else:
            start = (int(params.get("page", 1)) - 1) * size
        page, more = found[start : start + size], start + size < len(found)
        if style == "next-link":
            nxt = f"/pages/next-link?{urlencode({**q, 'page': int(q.get('page', 1)) + 1})}" if more else None
            return JSONResponse({"items": page, "links": {"next": nxt}})
        if style == "link-header":
            headers = {}
            if more:
                headers["Link"] = (
                    f'</pages/link-header?{urlencode({**q, "page": int(q.get("page", 1)) + 1})}>; rel="next"'
                )
            return JSONResponse({"items": page}, headers=headers)
        if style == "elsewhere":  # a next link to another host: must not be followed
            return JSONResponse({"items": page, "next": "http://other.example:9/steal"})
        if style == "endless":  # always one more page, never the key asked for
            return JSONResponse({"items": [], "next": f"/pages/endless?n={time.monotonic_ns()}"})
        if style == "cursor":
            return JSONResponse({"items": page, "meta": {"next": str(start + size) if more else None}})
        return JSONResponse({"items": page})  # numbered pages

    async def _event(self, request: Request) -> Response:
        if self.event_gate is not None:
            self.events_waiting += 1
            try:
                await self.event_gate.wait()
            finally:
                self.events_waiting -= 1
        if self.event_status is not None:
            detail = self.event_reject_detail
            if self.echo_headers:
                sent = request.headers.get("authorization") or request.headers.get("x-loyalty-key")
                detail = f"credentials {sent} may not send {detail}"
            return JSONResponse({"title": "rejected", "detail": detail}, self.event_status)
        if request.headers.get("content-type") != "application/cloudevents+json":
            return JSONResponse({"detail": "structured CloudEvents only"}, 415)
        key = request.headers.get("idempotency-key")
        if not key:
            return JSONResponse({"detail": "Idempotency-Key is required"}, 400)
        if key in self.events:
            return JSONResponse({"detail": "already applied"}, 409)
        self.events[key] = await request.json()
        return JSONResponse({"accepted": key}, 202)


def free_port() -> int:
    """A port nothing listens on (bound and released: free unless another process takes it now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(system: FakeSystem) -> AsyncIterator[str]:
    """Serve `system` on 127.0.0.1 in this event loop; yields its base URL."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        system, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        assert server.started, "the fake system did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        system.stopping.set()
        try:
            async with asyncio.timeout(5):
                await task
        except TimeoutError:
            task.cancel()
        sock.close()
