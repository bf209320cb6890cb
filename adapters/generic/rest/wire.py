"""The data calls' wire: aiohttp itself, answering `httpx.Response` objects (the adapter's vocabulary),
without httpx's client pipeline on the per-call path.

A customer view waits for every system at once, so what a call costs on this side is on the view's
critical path. Measured alone (bench/RESULTS.md): a call through httpx's client on aiohttp's transport
costs about 0.3 ms of CPU more than aiohttp's own, most of it building and merging the request, the
cookie jar and the response stream; five of them are a view's. Here a call is aiohttp's request, and its
answer is read whole into an httpx.Response. What httpx's client did that matters is kept: the base URL
joined as httpx joins it, no redirects followed, no cookies kept, transport failures raised as httpx's
exceptions (so the caller's retry and error rules stay as they are). OAuth2 token requests still go
through httpx's client (auth.py): they are rare.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
import orjson
from yarl import URL


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
    ) -> httpx.Response:
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
                # No httpx.Request: building one parses the URL again, per call; the answer's URL is
                # `url(...)` of what was asked.
                return httpx.Response(answer.status, headers=list(answer.raw_headers), content=body)
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
