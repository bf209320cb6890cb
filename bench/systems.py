"""Five external systems for the view-fanout benchmark, in a process of their own: each answers a batch
read of customers after a fixed delay (20 ms), and counts the calls it gets.

    python bench/systems.py --port 8701 --delay 0.02
    GET /s1/customers?ids=a,b   -> {"data": [{"id": "a", "value": "s1-a"}, ...]}   (after the delay)
    GET /stats                  -> {"s1": calls, ...};  POST /reset -> zero the counts
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SYSTEMS = ("s1", "s2", "s3", "s4", "s5")


def app(delay: float) -> Starlette:
    calls: Counter[str] = Counter()

    async def customers(request: Request) -> JSONResponse:
        system = request.path_params["system"]
        calls[system] += 1
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        await asyncio.sleep(delay)
        return JSONResponse({"data": [{"id": i, "value": f"{system}-{i}"} for i in ids]})

    async def stats(_: Request) -> JSONResponse:
        return JSONResponse({s: calls[s] for s in SYSTEMS})

    async def reset(_: Request) -> JSONResponse:
        calls.clear()
        return JSONResponse({})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/{system}/customers", customers),
        Route("/stats", stats),
        Route("/reset", reset, methods=["POST"]),
        Route("/health", health),
    ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.02)
    args = parser.parse_args()
    uvicorn.run(app(args.delay), host="127.0.0.1", port=args.port, log_level="warning")
