"""The baseline of view-throughput: a bare Starlette endpoint that answers every POST /graphql with
the same bytes the hub answered, served by the same server with the same settings.

    python bench/bare.py --port 8702 --body answer.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def app(body: bytes) -> Starlette:
    async def graphql(request: Request) -> Response:
        await request.body()  # read it, as the hub does
        return Response(body, media_type="application/json")

    async def health(_: Request) -> Response:
        return Response(b'{"ok": true}', media_type="application/json")

    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"]), Route("/healthz", health)])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True)
    args = parser.parse_args()
    uvicorn.run(app(args.body.read_bytes()), host="127.0.0.1", port=args.port, log_level="warning")
