"""workers: `hub serve --workers 2` against one worker, on the customer view, on PostgreSQL + RabbitMQ.

Two hubs on one fresh database and bus namespace (the demo data loaded once): one with a single worker
process, one with two, both as in production (bench/auth.py: an API key on every request, the rate
limiter on, shared out among the processes). wrk (16 connections) asks each in turn for the view of
view-throughput (Anna's profile, segments, offer history and 3 NBAs), `rounds` times. Whole answers are
not kept here (HUB_ANSWER_CACHE_ENTRIES=0): every request is executed, from the systems' cached reads, so
what is measured is the hub's own work spread over processes; a kept answer costs the hub so little that
the load generator, on the same two cores, would be what is measured.

Ratio = two workers' req/s ÷ one worker's (medians). Target >= 1.8.

Beside it, in the same rounds, the machine's ceiling (bench/busy.py): a bare endpoint that burns about the
hub's CPU per executed view, with one process and with two, under the same wrk. What it scales by is what
two cores shared with wrk allow any CPU-bound Python server; the hub's ratio is read against it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

import aiohttp
import auth
from procs import HUB, free_port, start, stop, up
from services import RABBITMQ_URL, fresh_database, fresh_namespace
from throughput import EMAIL, QUERY, alternate, post_script

TARGET = 1.8
HERE = Path(__file__).resolve().parent
BUSY_CPU_MS = 1.7  # the hub's CPU per executed view here (psutil over a wrk round: 1.6-1.8 ms)


async def run(rounds: int = 3, seconds: int = 5) -> list[str]:
    one_port, two_port, busy_one_port, busy_two_port = free_port(), free_port(), free_port(), free_port()
    path = [str(HERE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    busy_env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    with tempfile.TemporaryDirectory() as tmp:
        async with fresh_database() as database, fresh_namespace() as namespace:
            env = auth.env({**os.environ, "HUB_DATABASE_URL": database, "HUB_BROKER_URL": RABBITMQ_URL,
                            "HUB_BUS_NAMESPACE": namespace, "HUB_RELOAD_ON_CHANGE": "false",
                            "HUB_ANSWER_CACHE_ENTRIES": "0"})
            token = await auth.create_key(env)  # one store: one key for both hubs
            one = start([HUB, "serve", "--demo", "--port", str(one_port), "--log-level", "warning"], env)
            two = None
            busy = [start([sys.executable, str(HERE / "busy.py"), "--port", str(port), "--workers", str(n),
                           "--cpu-ms", str(BUSY_CPU_MS)], busy_env)
                    for port, n in ((busy_one_port, 1), (busy_two_port, 2))]
            try:
                async with aiohttp.ClientSession() as session:
                    await up(session, f"http://127.0.0.1:{one_port}/healthz", one)
                    two = start([HUB, "serve", "--workers", "2", "--port", str(two_port), "--log-level",
                                 "warning"], env)
                    await up(session, f"http://127.0.0.1:{two_port}/healthz", two)
                    for port, proc in zip((busy_one_port, busy_two_port), busy, strict=True):
                        await up(session, f"http://127.0.0.1:{port}/healthz", proc)
                    payload = {"query": QUERY, "variables": {"e": EMAIL}}
                    for port in (one_port, two_port):
                        await auth.assert_required(session, f"http://127.0.0.1:{port}/graphql", token)
                        async with session.post(f"http://127.0.0.1:{port}/graphql", json=payload,
                                                headers=auth.headers(token)) as r:
                            body = await r.json(content_type=None)
                            auth.check(r.status, body)
                        assert "errors" not in body and body["data"]["customerByKey"]["nextBestActions"], body
                script = post_script(Path(tmp), payload, token)
                ones, twos, busy_ones, busy_twos = await alternate(
                    [one_port, two_port, busy_one_port, busy_two_port], script, rounds, seconds)
            finally:
                stop(one, two, *busy)
    o, t = statistics.median(ones), statistics.median(twos)
    ratio = t / o
    ceiling = statistics.median(busy_twos) / statistics.median(busy_ones)
    return [
        f"customer view (executed, whole answers not kept) on PostgreSQL + RabbitMQ, 16 connections: "
        f"one worker {o:,.0f} req/s, two workers "
        f"{t:,.0f} req/s (rounds: one {[round(x) for x in ones]}, two {[round(x) for x in twos]})",
        f"the machine's ceiling, a bare endpoint burning {BUSY_CPU_MS} ms of CPU a request (bench/busy.py): "
        f"one process {statistics.median(busy_ones):,.0f} req/s, two {statistics.median(busy_twos):,.0f} "
        f"req/s = {ceiling:.2f} (rounds: one {[round(x) for x in busy_ones]}, two "
        f"{[round(x) for x in busy_twos]}); the hub's ratio ÷ it = {ratio / ceiling:.2f}",
        f"bench workers: ratio={ratio:.2f} target={TARGET} {'PASS' if ratio >= TARGET else 'FAIL'} "
        f"(two workers {t:,.0f} req/s ÷ one {o:,.0f} req/s; a bare CPU-bound endpoint: {ceiling:.2f})",
    ]


if __name__ == "__main__":
    for line in asyncio.run(run()):
        print(line)
