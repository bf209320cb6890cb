"""The data calls' wire: aiohttp itself, answering `Answer` objects (the part of `httpx.Response` the
adapter uses), without httpx's client pipeline on the per-call path.

A customer view waits for every system at once, so what a call costs on this side is on the view's
critical path. Measured alone (bench/RESULTS.md): a call through httpx's client on aiohttp's transport
costs about 0.3 ms of CPU more than aiohttp's own, most of it building and merging the request, the
cookie jar and the response stream; five of them are a view's. Here a call is aiohttp's request, and its
answer is read whole into an `Answer`. What httpx's client did that matters is kept: the base URL
joined as httpx joins it, no redirects followed, no cookies kept, transport failures raised as httpx's
exceptions (so the caller's retry and error rules stay as they are). OAuth2 token requests still go
through httpx's client (auth.py): they are rare.
"""

from __future__ import annotations

import asyncio
import json as stdlib_json
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
import orjson
from yarl import URL

REDIRECTS = frozenset({301, 302, 303, 307, 308})


class Answer:
    """A system's answer, read whole: status, headers and body, as `httpx.Response` names them.

    Not an httpx.Response: building one runs the body through httpx's stream and content-decoder
    machinery again (about 15 µs a call here, on the view's critical path), and its decoder would
    undo a Content-Encoding that aiohttp has undone already (a gzipped answer failed with
    DecodingError). The body here is as aiohttp gave it: decompressed."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: httpx.Headers, content: bytes):
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not. orjson first; what it refuses and the standard
        library reads (NaN, a UTF-16 body...) is read as before."""
        try:
            return orjson.loads(self.content)
        except orjson.JSONDecodeError:
            return stdlib_json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    @property
    def is_redirect(self) -> bool:
        return self.status_code in REDIRECTS and "location" in self.headers

    @property
    def links(self) -> dict[str | None, dict[str, str]]:
        """The Link header, parsed as httpx parses it (rare: link-header pagination)."""
        return httpx.Response(self.status_code, headers=self.headers).links

    def __repr__(self) -> str:
        return f"<Answer [{self.status_code}]>"


class Wire:
    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        max_connections: int,
        verify: bool,
    ):
        self._base = base_url if base_url.endswith("/") else base_url + "/"  # as httpx's base_url
        self._headers = dict(headers)
        self._max_connections = max_connections
        self._verify = verify
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop (aiohttp binds its session to it).
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, ssl=self._verify, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # a system's cookies are nobody's state here
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None),  # each attempt is bounded by the caller
                trust_env=False,
            )
        return self._session

    def url(self, url: str) -> str:
        """`url` against the base URL, as httpx merges them (a relative path is appended)."""
        if url.startswith(("http://", "https://")):
            return url
        return self._base + url.lstrip("/")

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
    ) -> Answer:
        target = self.url(url)
        data = content
        sent = dict(headers or {})
        if json is not None:
            data = orjson.dumps(json)
            sent.setdefault("Content-Type", "application/json")
        try:
            async with self._open().request(
                method, URL(target, encoded=True), headers=sent, data=data, allow_redirects=False
            ) as answer:
                body = await answer.read()
                return Answer(answer.status, httpx.Headers(list(answer.raw_headers)), body)
        except asyncio.CancelledError:
            raise
        except aiohttp.ClientError as exc:
            raise _transport_error(exc, httpx.Request(method, target)) from exc

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _transport_error(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    """aiohttp's failure as httpx's, which the caller's retry rules know."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(type(exc).__name__, request=request)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(type(exc).__name__, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(type(exc).__name__, request=request)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return httpx.RemoteProtocolError(type(exc).__name__, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(type(exc).__name__, request=request)
    return httpx.ReadError(type(exc).__name__, request=request)
