"""`hub serve`'s HTTP protocol (hub.api.oneflush) on a real socket: an answer's head and body reach the
socket in one write, a head is never held back from a caller, and nothing is reordered or dropped."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from hub.api.oneflush import OneFlushHttp
from tests.support import serving


class _Recording:
    """The connection's socket transport, with each write that reaches it written down."""

    def __init__(self, transport: Any, writes: list[bytes]):
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        chunks = [bytes(c) for c in chunks]
        self._writes.append(b"".join(chunks))
        self._transport.writelines(chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def recorded(writes: list[bytes]) -> type:
    class Recorded(OneFlushHttp):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(_Recording(transport, writes))

    return Recorded


async def _answer(scope, receive, send, body: bytes = b'{"ok":true}') -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def test_head_and_body_leave_in_one_write():
    writes: list[bytes] = []

    async def app(scope, receive, send):
        await _answer(scope, receive, send, scope["path"].encode())

    async with serving(app, recorded(writes)) as address:
        async with httpx.AsyncClient(base_url=f"http://{address}") as client:  # one kept-alive connection
            first = await client.get("/first")
            second = await client.get("/second")
    assert (first.status_code, first.text, second.text) == (200, "/first", "/second")
    assert len(writes) == 2, writes  # two answers, one write each (uvicorn alone: four)
    for write, path in zip(writes, (b"/first", b"/second"), strict=True):
        assert write.startswith(b"HTTP/1.1 200 OK\r\n") and write.endswith(b"\r\n\r\n" + path)


async def test_a_late_body_does_not_hold_the_head_back():
    """A streamed answer (a multipart subscription) gets its head at once, before its first chunk."""
    writes: list[bytes] = []
    head_seen = asyncio.Event()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await head_seen.wait()  # the body only once the caller has the head
        await send({"type": "http.response.body", "body": b"late", "more_body": False})

    async with serving(app, recorded(writes)) as address:
        host, port = address.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"GET / HTTP/1.1\r\nhost: hub\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            head_seen.set()
            body = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
    assert body == b"4\r\nlate\r\n0\r\n\r\n"
    assert writes == [head, body]


async def test_an_answer_cut_off_still_sends_its_head_then_closes():
    """The app fails after the head: uvicorn closes the connection, and what is held goes out first."""

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        raise RuntimeError("the app broke after the head")

    async with serving(app) as address:
        host, port = address.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"GET / HTTP/1.1\r\nhost: hub\r\n\r\n")
            received = await asyncio.wait_for(reader.read(), 5)  # everything, up to the close
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and received.endswith(b"content-length: 10\r\n\r\n")


async def test_malformed_requests_get_uvicorns_own_answer():
    async with serving(_answer) as address:
        host, port = address.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
            received = await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n") and received.endswith(b"Invalid HTTP request received.")
