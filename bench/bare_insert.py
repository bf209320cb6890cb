"""The baseline of start-contact: a bare Starlette endpoint that runs one INSERT … RETURNING in a
transaction on the same database as the hub, through the hub's own engine settings, under the same
server.

    python bench/bare_insert.py --port 8703 --database postgresql+asyncpg://…
"""

from __future__ import annotations

import argparse
import contextlib
import uuid
from collections.abc import AsyncIterator

import orjson
import uvicorn
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.store.db import create_engine

INSERT = text("INSERT INTO bench_contacts (id, started_at) VALUES (:id, now()) RETURNING id, started_at")


def app(database: str) -> Starlette:
    engine = create_engine(database)

    async def graphql(request: Request) -> Response:
        await request.body()  # read it, as the hub does
        async with engine.begin() as tx:
            row = (await tx.execute(INSERT, {"id": uuid.uuid4().hex})).one()
        contact = {"id": row.id, "startedAt": row.started_at.isoformat()}
        body = {"data": {"startContact": {"contact": contact}}}
        return Response(orjson.dumps(body), media_type="application/json")

    async def health(_: Request) -> Response:
        return Response(b'{"ok": true}', media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with engine.begin() as tx:
            await tx.execute(text(
                "CREATE TABLE IF NOT EXISTS bench_contacts (id text PRIMARY KEY, started_at timestamptz)"
            ))
        yield
        await engine.dispose()

    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"]), Route("/healthz", health)],
                     lifespan=lifespan)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", required=True)
    args = parser.parse_args()
    uvicorn.run(app(args.database), host="127.0.0.1", port=args.port, log_level="warning")
