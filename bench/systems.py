"""Five external systems for the view-fanout and peer-gateway benchmarks, in a process of their own: each
answers a batch read of customers after a fixed delay (20 ms), and counts the calls it gets.

    python bench/systems.py --port 8701 --delay 0.02
    GET /s1/customers?ids=a,b   -> {"data": [{"id": "a", "value": "s1-a"}, ...]}   (after the delay)
    GET /stats                  -> {"s1": calls, ...};  POST /reset -> zero the counts

A plain ASGI callable under uvicorn, no framework: the systems stand for ones that answer in 20 ms, so
what they add beyond the delay is kept as small as this machine allows (five answers due at once are
written one after the other by one process), and the benchmarks' floor is the delay, not this server.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

import uvicorn
from plain import Message, Receive, Send, answer, lifespan

SYSTEMS = ("s1", "s2", "s3", "s4", "s5")


def app(delay: float) -> Callable[..., Awaitable[None]]:
    calls: Counter[str] = Counter()

    async def asgi(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        path = scope["path"]
        if path == "/stats":
            await answer(send, {s: calls[s] for s in SYSTEMS})
        elif path == "/reset":
            calls.clear()
            await answer(send, {})
        elif path == "/health":
            await answer(send, {"ok": True})
        elif path.endswith("/customers") and path.count("/") == 2:
            system = path.split("/")[1]
            calls[system] += 1
            query = parse_qs(scope["query_string"].decode())
            ids = [i for i in (query.get("ids") or [""])[0].split(",") if i]
            await asyncio.sleep(delay)
            await answer(send, {"data": [{"id": i, "value": f"{system}-{i}"} for i in ids]})
        else:
            await answer(send, {"error": "not found"}, 404)

    return asgi


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.02)
    args = parser.parse_args()
    uvicorn.run(app(args.delay), host="127.0.0.1", port=args.port, log_level="warning")
