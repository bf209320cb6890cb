"""One write per answer: uvicorn's HTTP/1.1 protocol (httptools), with a response's head (status line and
headers) held until its body follows, so that both leave in one write.

uvicorn writes the head when the app sends `http.response.start` and the body on `http.response.body`:
two writes, so two system calls and, with TCP_NODELAY, two packets for every answer. On this machine a
write to a socket costs about as much CPU as the hub's own work on a small answer, and the caller waits
for the second packet anyway (bench/RESULTS.md, the seventh session). The held head goes out with the
next write on the connection, or at the latest on the event loop's next turn, so a streamed answer whose
first chunk comes late (a multipart subscription) still gets its head at once. Nothing is reordered: a
write always sends what is held first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD = b"HTTP/1.1 "
_END = b"\r\n\r\n"


class HeldHead:
    """A connection's transport that holds a response's head for its body (see the module)."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines((held, data))
        elif _is_head(data):
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def writelines(self, chunks: Any) -> None:
        self.flush()
        self._transport.writelines(chunks)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's own
        return getattr(self._transport, name)


def _is_head(data: bytes | bytearray | memoryview) -> bool:
    """A response's status line and headers, as uvicorn writes them (a whole error answer, which uvicorn
    writes with its body in one piece, does not end with the blank line)."""
    return bytes(data[:9]) == _HEAD and bytes(data[-4:]) == _END


class OneFlushHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol writing each answer's head and body together (`hub serve`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        held: Any = HeldHead(transport, asyncio.get_running_loop())
        super().connection_made(held)
