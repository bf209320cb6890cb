"""A second floor for view-fanout: the least a Python service in front of the five systems can do. A plain
ASGI callable, served as the hub is served (uvicorn, httptools, the hub's one-write protocol), that reads
a POST's JSON, asks the five systems concurrently with one aiohttp session and answers the merged values.
No GraphQL, no authentication, no cache, no resilience: what is left is the extra HTTP hop and the
fan-out itself, which any service in this place pays on this machine.

    python bench/proxy.py --port 8703 --systems http://127.0.0.1:8701
    POST /graphql {"variables": {"id": "c1"}}  -> {"data": {"customer": {"id": "c1", "attributes": {...}}}}
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import orjson
import uvicorn

from hub.api.oneflush import OneFlushHttp

SYSTEMS = ("s1", "s2", "s3", "s4", "s5")
Message = MutableMapping[str, Any]


def app(systems: str) -> Callable[..., Awaitable[None]]:
    session: list[aiohttp.ClientSession] = []  # made in the server's loop, at start-up

    async def one(system: str, customer_id: str) -> Any:
        async with session[0].get(f"{systems}/{system}/customers", params={"ids": customer_id}) as r:
            return (await r.json())["data"][0]["value"]

    async def asgi(scope: Message, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                session.append(aiohttp.ClientSession())
                await send({"type": "lifespan.startup.complete"})
            await session[0].close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["path"] == "/graphql":
            customer_id = orjson.loads(body)["variables"]["id"]
            values = await asyncio.gather(*(one(s, customer_id) for s in SYSTEMS))
            attributes = dict(zip(SYSTEMS, values, strict=True))
            answer = {"data": {"customer": {"id": customer_id, "attributes": attributes}}}
        else:
            answer = {"ok": True}
        data = orjson.dumps(answer)
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    return asgi


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--systems", required=True)
    args = parser.parse_args()
    uvicorn.run(app(args.systems), host="127.0.0.1", port=args.port, log_level="warning", http=OneFlushHttp)
