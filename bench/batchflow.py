"""batch-flow: one million request-status records through a daily flow (the CRM reports request status
to CM daily, as the seed says), on PostgreSQL + RabbitMQ, against raw aio-pika publishing (each confirm
awaited) and consuming (each acked) one message per record on the same broker.

Each size runs in a process of its own (a hub in-process, consumers off, on a fresh database and bus
namespace), so its peak RSS is its own: the records are written to the outbox as the CRM writes them
(1000 per transaction), the relay packs them into the flow's queue as they come, then the flow's run
delivers the queue to CM (what the scheduler does at 02:00, or `hub flows run`). Records/s is counted
from the first record written to the last one CM applied. 100k customers, 10 records each (two requests
through five statuses), in customer order: the order a CRM's day of status changes comes in.

Ratio = records/s at 1M ÷ raw msg/s. Target >= 3; and the peak RSS at 1M within 1.2 times that at 100k.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import auth
from services import RABBITMQ_URL, fresh_database, fresh_namespace, raw_publish_consume

TARGET = 3.0
RSS_LIMIT = 1.2
FLOW = "request-status-to-cm"
PER_TRANSACTION = 1000
STATUSES = ("OPEN", "IN_PROGRESS", "WAITING_FOR_CUSTOMER", "IN_PROGRESS", "COMPLETED")
HERE = Path(__file__).resolve().parent


def _records(n: int):
    """(customer, request, kind, status, at) in customer order: 10 per customer."""
    base = datetime(2026, 11, 30, tzinfo=UTC)
    for i in range(n):
        customer, rest = divmod(i, 10)
        request, step = divmod(rest, len(STATUSES))
        yield (f"cus_{customer:020x}", f"req_{customer:012x}_{request}", "SERVICE" if request else "QUOTE",
               STATUSES[step], base + timedelta(minutes=step))


async def _one_size(n: int) -> dict[str, float]:
    from hub.config import Settings
    from hub.events import REQUEST_STATUS, RequestStatusData, make
    from hub.runtime import Hub

    async with fresh_database() as database, fresh_namespace() as namespace:
        # As in production (bench/auth.py), though no request reaches the API here.
        hub = Hub(Settings(database_url=database, broker_url=RABBITMQ_URL, bus_namespace=namespace,
                           reload_on_change=False, **auth.SETTINGS))
        await hub.start(consume=False)  # the flow is delivered below, as its run would
        try:
            flow = hub.flow(FLOW)
            started = time.perf_counter()
            chunk = []
            for customer, request, kind, status, at in _records(n):
                chunk.append(make(REQUEST_STATUS, RequestStatusData(
                    requestId=request, customerId=customer, kind=kind, status=status, at=at, note=None,
                ), source="urn:crm", subject=customer, correlationid=request))
                if len(chunk) == PER_TRANSACTION:
                    async with hub.engine.begin() as tx:
                        await hub.outbox.add(tx, chunk)
                    hub.relay.wake()
                    chunk = []
            if chunk:
                async with hub.engine.begin() as tx:
                    await hub.outbox.add(tx, chunk)
                hub.relay.wake()
            written = time.perf_counter()
            while await hub.outbox.backlog(hub.engine):  # noqa: ASYNC110 - another table, polled
                await asyncio.sleep(0.05)
            queued = time.perf_counter()
            delivered = await hub.scheduler.deliver(flow)
            done = time.perf_counter()
        finally:
            await hub.close()
    assert delivered == n, f"delivered {delivered} of {n}"
    return {
        "records": n,
        "seconds": done - started,
        "write": written - started,
        "relay_tail": queued - written,
        "deliver": done - queued,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run_size(n: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--size", str(n)],
                         capture_output=True, text=True, timeout=1800, cwd=HERE)
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"batch-flow {n}: {out.stdout[-2000:]}{out.stderr[-4000:]}")


async def run(small: int = 100_000, large: int = 1_000_000, raw_count: int = 10_000) -> list[str]:
    small_run = await asyncio.to_thread(_run_size, small)
    raw = await raw_publish_consume(raw_count, b"x" * 400)
    large_run = await asyncio.to_thread(_run_size, large)
    rate = large_run["records"] / large_run["seconds"]
    ratio = rate / raw
    rss = large_run["rss_mb"] / small_run["rss_mb"]
    ok = ratio >= TARGET and rss <= RSS_LIMIT
    lines = [
        f"daily flow, {r['records']:,} request-status records: {r['records'] / r['seconds']:,.0f} records/s "
        f"({r['seconds']:.1f} s: written {r['write']:.1f} s, relay done {r['relay_tail']:.1f} s later, "
        f"the run delivered them to CM in {r['deliver']:.1f} s); peak RSS {r['rss_mb']:.0f} MB"
        for r in (small_run, large_run)
    ]
    return [
        *lines,
        f"raw aio-pika, one message per record (publish with confirm, consume with ack): {raw:,.0f} msg/s "
        f"({raw_count:,} messages)",
        f"bench batch-flow: ratio={ratio:.1f} target={TARGET} {'PASS' if ok else 'FAIL'} ({rate:,.0f} "
        f"records/s ÷ raw {raw:,.0f} msg/s; peak RSS 1M ÷ 100k = {rss:.2f}, limit {RSS_LIMIT})",
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int)
    args = parser.parse_args()
    if args.size:
        os.environ.setdefault("HUB_RELOAD_ON_CHANGE", "false")
        print(json.dumps(asyncio.run(_one_size(args.size))), flush=True)
    else:
        for line in asyncio.run(run()):
            print(line)
