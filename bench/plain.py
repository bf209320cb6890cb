"""What the benchmarks' plain ASGI servers share (bench/systems.py, proxy.py, busy.py): the lifespan
handshake, reading a request's body and answering JSON. Plain ASGI, no framework: these servers stand
for the least a service can do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def lifespan(receive: Receive, send: Send, started: Callable[[], None] | None = None) -> None:
    """Answer uvicorn's start-up and shut-down; `started` runs once the loop is up (a client session)."""
    while (await receive())["type"] != "lifespan.shutdown":
        if started is not None:
            started()
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def body(receive: Receive) -> bytes:
    data, more = b"", True
    while more:
        message = await receive()
        data += message.get("body", b"")
        more = message.get("more_body", False)
    return data


async def answer(send: Send, content: Any, status: int = 200) -> None:
    """`content` as JSON (bytes are sent as they are), head and body."""
    data = content if isinstance(content, bytes) else orjson.dumps(content)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
