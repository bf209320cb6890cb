"""The ceiling of the workers benchmark on this machine: a bare ASGI endpoint that spends a fixed amount of
Python CPU per request (about what the hub spends on an executed view), served by uvicorn as the hub is
(httptools, the hub's one-write protocol) with one process or several. Under the same wrk, two processes ÷
one shows how far any CPU-bound Python server scales on two cores that wrk, PostgreSQL and RabbitMQ share.

    python bench/busy.py --port 8704 --workers 2 --cpu-ms 1.5
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Awaitable, Callable

import uvicorn
from plain import Message, Receive, Send, answer, body, lifespan

from hub.api.oneflush import OneFlushHttp

BODY = b'{"data": {"ok": true}}'


def create() -> Callable[..., Awaitable[None]]:
    """The app, in each worker process (uvicorn imports it by name there)."""
    cpu = float(os.environ["BUSY_CPU_MS"]) / 1e3

    async def asgi(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        await body(receive)
        until = time.thread_time() + cpu  # CPU time, not wall time: a preempted worker still owes it
        while time.thread_time() < until:
            pass
        await answer(send, BODY)

    return asgi


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cpu-ms", type=float, default=1.5)
    args = parser.parse_args()
    os.environ["BUSY_CPU_MS"] = str(args.cpu_ms)
    uvicorn.run("busy:create", factory=True, workers=args.workers, host="127.0.0.1", port=args.port,
                log_level="warning", http=OneFlushHttp)
