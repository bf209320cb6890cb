"""What the benchmarks on PostgreSQL + RabbitMQ share: a fresh database and a fresh bus namespace per
run, both removed afterwards, and the raw aio-pika baseline the event benchmarks are measured against."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg

from hub.config import SHIPPED_MAPPINGS
from hub.core.privacy import queue_of
from hub.model import HUB_SYSTEM
from hub.registry import load_mapping

POSTGRES_URL = os.environ.get("HUB_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
RABBITMQ_URL = os.environ.get("HUB_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database (its SQLAlchemy URL), dropped afterwards."""
    admin = POSTGRES_URL.replace("postgresql+asyncpg", "postgresql")
    name = f"bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield f"{POSTGRES_URL.rpartition('/')[0]}/{name}"
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def fresh_namespace(*queues: str) -> AsyncIterator[str]:
    """A bus namespace of its own; its queues and exchanges are deleted afterwards (`queues`: the
    benchmark's own, besides those the hub declares)."""
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    try:
        yield namespace
    finally:
        await delete_namespace(namespace, queues)


def hub_queues() -> list[str]:
    """Every durable queue the shipped deployment declares: the dead letters, each flow's, and each system's
    privacy queue (and the hub's own). Each is a quorum queue: one left behind per run piles up in the
    broker (hundreds of them slowed RabbitMQ 3.10 down until it stopped opening connections)."""
    mapping, _ = load_mapping(SHIPPED_MAPPINGS)
    return ["dead-letters", *(f.queue for f in mapping.flows),
            *(queue_of(system) for system in (HUB_SYSTEM, *mapping.systems))]


async def delete_namespace(namespace: str, queues: tuple[str, ...] = ()) -> None:
    """Every queue and exchange named `<namespace>.…` (the management API is not assumed: the names the
    hub declares, and `queues`, are tried, each on a channel of its own since a missing one closes it)."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    try:
        for name in dict.fromkeys([*hub_queues(), *queues]):
            with contextlib.suppress(Exception):
                async with connection.channel() as ch:
                    await ch.queue_delete(f"{namespace}.{name}")
        for exchange in ("events", "dlx"):
            with contextlib.suppress(Exception):
                async with connection.channel() as ch:
                    await ch.exchange_delete(f"{namespace}.{exchange}")
    finally:
        await connection.close()


async def raw_publish_consume(count: int, body: bytes, *, window: int = 1) -> float:
    """The floor: `count` messages published with confirms (`window` in flight at a time; 1 = each
    awaited, as one message per record is) to a durable quorum queue while a consumer acks each one;
    returns messages per second from the first publish to the last ack."""
    queue_name = f"bench.raw.{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(RABBITMQ_URL)
    try:
        publishing = await connection.channel(publisher_confirms=True)
        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=200)
        queue = await consuming.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        done = asyncio.Event()
        seen = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            await message.ack()
            seen += 1
            if seen == count:
                done.set()

        tag = await queue.consume(on_message)
        started = time.perf_counter()
        for first in range(0, count, window):
            await asyncio.gather(*(
                publishing.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue_name,
                )
                for _ in range(min(window, count - first))
            ))
        await done.wait()
        elapsed = time.perf_counter() - started
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        return count / elapsed
    finally:
        await connection.close()
