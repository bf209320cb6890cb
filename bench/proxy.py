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
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import uvicorn
from plain import Message, Receive, Send, body, lifespan
from plain import answer as respond

from hub.api.oneflush import OneFlushHttp

SYSTEMS = ("s1", "s2", "s3", "s4", "s5")


def app(systems: str) -> Callable[..., Awaitable[None]]:
    session: list[aiohttp.ClientSession] = []  # made in the server's loop, at start-up

    async def one(system: str, customer_id: str) -> Any:
        async with session[0].get(f"{systems}/{system}/customers", params={"ids": customer_id}) as r:
            return (await r.json())["data"][0]["value"]

    async def asgi(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, lambda: session.append(aiohttp.ClientSession()))
            await session[0].close()
            return
        request = await body(receive)
        if scope["path"] == "/graphql":
            customer_id = orjson.loads(request)["variables"]["id"]
            values = await asyncio.gather(*(one(s, customer_id) for s in SYSTEMS))
            attributes = dict(zip(SYSTEMS, values, strict=True))
            answer = {"data": {"customer": {"id": customer_id, "attributes": attributes}}}
        else:
            answer = {"ok": True}
        await respond(send, answer)

    return asgi


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--systems", required=True)
    args = parser.parse_args()
    uvicorn.run(app(args.systems), host="127.0.0.1", port=args.port, log_level="warning", http=OneFlushHttp)
