"""Whole answers, cached at the edge: a query asked again is answered with the bytes of its last answer,
without parsing, validating or executing it, while every cached read that answer was made of is still
current (hub.core.reads). So an answer is exactly as fresh as the reads behind it: a change announcement,
an expired TTL, a reload or a new read of any of them makes it stale, and the next request executes.

Kept: answers to queries (never mutations) whose root fields are all in the schema's cacheable list,
with no errors, status 200, at most `max_bytes`. The key is the request as it came (method, body or
query string, content type, accept, credentials) and the mapping version: a differently spelled query
is another entry, and two callers never share an answer unless they sent the same credentials.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache

from hub.core import reads
from hub.core.reads import Reads
from hub.observability.metrics import answer_cache

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Headers that make two requests different answers.
_KEYED_HEADERS = (b"content-type", b"accept", b"authorization")
_TOO_LARGE = (
    b'{"errors":[{"message":"the request body is too large","extensions":{"code":"PAYLOAD_TOO_LARGE"}}]}'
)
_TIMED_OUT = (
    b'{"errors":[{"message":"the request body did not arrive in time",'
    b'"extensions":{"code":"REQUEST_TIMEOUT"}}]}'
)
_JSON = [(b"content-type", b"application/json")]


class AnswerReads(Reads):
    """The request's reads, and whether the GraphQL layer found its answer fit to keep."""

    __slots__ = ("approved",)

    def __init__(self) -> None:
        super().__init__()
        self.approved = False


@dataclass(frozen=True, slots=True)
class Answer:
    headers: list[tuple[bytes, bytes]]
    body: bytes
    reads: Reads


class AnswerCache:
    def __init__(self, max_entries: int, max_bytes: int):
        self._entries: LRUCache[tuple[Any, ...], Answer] | None = (
            LRUCache(maxsize=max_entries) if max_entries > 0 else None
        )
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> Answer | None:
        if self._entries is None:
            return None
        answer = self._entries.get(key)
        if answer is None:
            self.misses += 1
            return None
        if not answer.reads.still_current():
            self._entries.pop(key, None)
            self.misses += 1
            return None
        self.hits += 1
        return answer

    def put(self, key: tuple[Any, ...], answer: Answer) -> None:
        if self._entries is not None and len(answer.body) <= self.max_bytes:
            self._entries[key] = answer

    @property
    def enabled(self) -> bool:
        return self._entries is not None

    def clear(self) -> None:
        if self._entries is not None:
            self._entries.clear()


class CachedAnswers:
    """ASGI in front of the GraphQL app for HTTP requests: answers from the cache, or runs the app,
    recording its reads, and keeps the answer when it may."""

    def __init__(
        self,
        app: ASGIApp,
        cache: AnswerCache,
        version: Callable[[], int],
        max_body: int,
        body_timeout: float = 30.0,
    ):
        self._app = app
        self._cache = cache
        self._version = version  # the mapping version: answers never outlive the wiring they came from
        self._max_body = max_body
        self._body_timeout = body_timeout  # a slow sender is cut off (408), not waited for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "POST"):
            await self._app(scope, receive, send)
            return
        body = b""
        if scope["method"] == "POST":
            try:
                async with asyncio.timeout(self._body_timeout):
                    read = await _read_body(receive, self._max_body)
            except TimeoutError:
                await _send(send, 408, [*_JSON, (b"connection", b"close")], _TIMED_OUT)
                return
            if read is None:
                await _send(send, 413, _JSON, _TOO_LARGE)
                return
            body = read
        if not self._cache.enabled:
            await self._app(scope, _replay(body, receive), send)
            return
        key = self._key(scope, body)
        hit = self._cache.get(key)
        answer_cache(hit is not None)
        if hit is not None:
            await _send(send, 200, hit.headers, hit.body)
            return
        await self._run(scope, _replay(body, receive), send, key)

    def _key(self, scope: Scope, body: bytes) -> tuple[Any, ...]:
        headers = {k: v for k, v in scope["headers"] if k in _KEYED_HEADERS}
        return (
            self._version(),
            scope["method"],
            scope["path"],
            scope.get("query_string", b""),
            body,
            *(headers.get(h) for h in _KEYED_HEADERS),
        )

    async def _run(self, scope: Scope, receive: Receive, send: Send, key: tuple[Any, ...]) -> None:
        recorded = AnswerReads()
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        token = reads.recording(recorded)
        try:
            await self._app(scope, receive, capture)
        finally:
            reads.stop_recording(token)
        if status == 200 and recorded.approved and recorded.cacheable:
            self._cache.put(key, Answer(headers, b"".join(chunks), recorded))


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it passes `limit` bytes (nothing more is read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client went away: the app sees an empty body
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    if not any(k == b"content-length" for k, _ in headers):
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
