"""Not one of `make bench`'s verdicts: the latency spread of the executed customer view at a steady rate
below the hub's capacity, where pauses (a garbage collection, a slow statement) show in the tail.

One hub (`hub serve --demo`, PostgreSQL + RabbitMQ, as in production: bench/auth.py), whole answers not
kept (HUB_ANSWER_CACHE_ENTRIES=0), asked for view-throughput's view at RATE requests/s, open loop (a slow
answer does not slow the next request down), for SECONDS.

    .venv/bin/python bench/view_latency.py --rate 150 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import aiohttp
import auth
from procs import HUB, free_port, start, stop, up
from services import RABBITMQ_URL, fresh_database, fresh_namespace
from throughput import EMAIL, QUERY


async def run(rate: int, seconds: float) -> str:
    port = free_port()
    async with fresh_database() as database, fresh_namespace() as namespace:
        env = auth.env({**os.environ, "HUB_DATABASE_URL": database, "HUB_BROKER_URL": RABBITMQ_URL,
                        "HUB_BUS_NAMESPACE": namespace, "HUB_RELOAD_ON_CHANGE": "false",
                        "HUB_ANSWER_CACHE_ENTRIES": "0"})
        token = await auth.create_key(env)
        hub = start([HUB, "serve", "--demo", "--port", str(port), "--log-level", "warning"], env)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                await up(session, f"http://127.0.0.1:{port}/healthz", hub)
                url = f"http://127.0.0.1:{port}/graphql"
                payload = {"query": QUERY, "variables": {"e": EMAIL}}
                headers = auth.headers(token)
                took: list[float] = []

                async def one() -> None:
                    started = time.perf_counter()
                    async with session.post(url, json=payload, headers=headers) as r:
                        body = await r.json(content_type=None)
                        auth.check(r.status, body)
                    took.append(time.perf_counter() - started)

                for _ in range(200):  # warm: connections, the systems' cached reads
                    await one()
                took.clear()
                calls, begun = [], time.perf_counter()
                for i in range(int(rate * seconds)):
                    wait = begun + i / rate - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    calls.append(asyncio.create_task(one()))
                await asyncio.gather(*calls)
        finally:
            stop(hub)
    q = statistics.quantiles(took, n=100)
    return (f"executed view at {rate} req/s for {seconds:g} s: p50 {statistics.median(took) * 1e3:.1f} ms, "
            f"p90 {q[89] * 1e3:.1f} ms, p99 {q[98] * 1e3:.1f} ms, max {max(took) * 1e3:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=150)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(asyncio.run(run(args.rate, args.seconds)))
