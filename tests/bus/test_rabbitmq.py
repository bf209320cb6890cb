"""RabbitMQ-only behaviour: topology, message properties, reconnects, crashed consumers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil

import aio_pika
import pytest
from aio_pika.exceptions import ChannelPreconditionFailed

from hub.events import CloudEvent
from hub.messaging.bus import BusError, BusUnavailable, Route
from hub.messaging.bus.rabbitmq import CONTENT_TYPE
from tests.bus.conftest import DELIVERY_LIMIT, Recorder
from tests.bus.proxy import TcpProxy
from tests.support import eventually

pytestmark = pytest.mark.rabbitmq

ROUTES = [Route("cm", ("contact.#",)), Route("crm", ("request.*",))]


def event(type_: str = "contact.response", **data) -> CloudEvent:
    return CloudEvent(type=type_, source="urn:test", data=data or {"n": 1}, correlationid="corr-7")


async def _rabbitmqctl_queues() -> list[dict] | None:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        return None
    proc = await asyncio.create_subprocess_exec(
        tool,
        "list_queues",
        "--formatter",
        "json",
        "name",
        "durable",
        "type",
        "arguments",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    except TimeoutError:
        proc.kill()
        return None
    if proc.returncode != 0:
        return None
    return json.loads(out)


async def test_topology_is_declared_idempotently(rabbit_factory):
    bus = await rabbit_factory()
    await bus.declare(ROUTES)
    await bus.declare(ROUTES)
    other = await rabbit_factory()  # a second hub process on the same broker
    await other.declare(ROUTES)
    got = Recorder()
    await bus.consume("cm", got)
    await other.publish(event())
    await eventually(lambda: got.events)
    assert len(got.events) == 1  # one binding, not two


async def test_queues_are_durable_quorum_with_delivery_limit_and_dlx(rabbit_factory, rabbitmq_url):
    bus = await rabbit_factory()
    await bus.declare(ROUTES)
    conn = await aio_pika.connect(rabbitmq_url)
    try:
        # The broker refuses to re-declare a queue with other arguments: so these are its arguments.
        async with conn.channel() as ch:
            await ch.declare_queue(bus.physical("cm"), durable=True, arguments=bus.queue_arguments())
        async with conn.channel() as ch:
            await ch.declare_queue(bus.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"})
        with pytest.raises(ChannelPreconditionFailed):
            async with conn.channel() as ch:
                await ch.declare_queue(
                    bus.physical("cm"), durable=True, arguments={"x-queue-type": "classic"}
                )
    finally:
        await conn.close()
    assert bus.queue_arguments() == {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": bus.dlx_name,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    listed = await _rabbitmqctl_queues()
    if listed is not None:
        by_name = {q["name"]: q for q in listed}
        for name in (bus.physical("cm"), bus.physical("crm"), bus.dead_letter_queue):
            assert by_name[name]["durable"] is True
            assert by_name[name]["type"] == "quorum"
        args = by_name[bus.physical("cm")]["arguments"]
        args = dict(args) if isinstance(args, dict) else {a[0]: a[-1] for a in args}
        assert args.get("x-delivery-limit") == DELIVERY_LIMIT
        assert args.get("x-dead-letter-exchange") == bus.dlx_name


async def test_messages_are_persistent_structured_cloudevents(rabbit_factory, rabbitmq_url):
    bus = await rabbit_factory()
    await bus.declare(ROUTES)
    sent = event("contact.proposition.shown")
    await bus.publish(sent)
    conn = await aio_pika.connect(rabbitmq_url)
    try:
        async with conn.channel() as ch:
            queue = await ch.get_queue(bus.physical("cm"))
            message = await queue.get(no_ack=True, timeout=5)
    finally:
        await conn.close()
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == CONTENT_TYPE == "application/cloudevents+json"
    assert message.message_id == sent.id
    assert message.correlation_id == "corr-7"
    assert message.type == "contact.proposition.shown"
    assert message.routing_key == "contact.proposition.shown"
    assert message.timestamp is not None
    assert CloudEvent.from_json(message.body) == sent


async def test_publish_fails_fast_when_the_broker_is_away(rabbit_factory):
    with pytest.raises(BusUnavailable):
        await rabbit_factory(url="amqp://guest:guest@127.0.0.1:1/")


async def test_reconnect_after_a_cut_resumes_consumers_and_publishing(rabbit_factory, rabbitmq_url):
    proxy = await TcpProxy.for_url(rabbitmq_url).start()
    try:
        bus = await rabbit_factory(url=proxy.url(rabbitmq_url), reconnect_interval=0.2)
        await bus.declare(ROUTES)
        cm, crm, heard = Recorder(), Recorder(), Recorder()
        await bus.consume("cm", cm)
        await bus.consume("crm", crm)
        await bus.broadcast(["request.*"], heard)
        await bus.publish(event())
        await eventually(lambda: cm.events)

        tags = {queue: consumer.tag for queue, consumer in bus._consumers.items()}
        await proxy.cut()
        await eventually(lambda: not bus.restored.is_set(), timeout=5)
        with pytest.raises(BusUnavailable):
            await bus.publish(event())
        # Someone else publishes while this hub is cut off: it waits in the queue.
        other = await rabbit_factory()
        during = event("request.status")
        await other.publish(during)
        await asyncio.sleep(1.5)
        proxy.restore()

        await asyncio.wait_for(bus.restored.wait(), 15)
        await eventually(lambda: crm.events)
        assert crm.ids == [during.id]
        # The broadcast listener's exclusive queue died with the connection; the restore made a new one.
        again = event("request.status")
        await bus.publish(again)
        await eventually(lambda: again.id in heard.ids)
        assert during.id not in heard.ids  # transient: what was sent while it was away is not kept
        after = event()
        await bus.publish(after)
        await eventually(lambda: after.id in cm.ids)
        assert proxy.accepted >= 2  # it really reconnected through the proxy
        # The bus itself re-started its consumers (aio-pika does not own them: robust=False).
        assert all(bus._consumers[q].tag not in (None, tag) for q, tag in tags.items())
        # One consumer per queue, not two: a message is handled once. (Counted from the restore on:
        # the first event may come twice, its ack lost in the cut, as AMQP's at-least-once allows.)
        burst = [event(n=i) for i in range(10)]
        for e in burst:
            await bus.publish(e)
        await eventually(lambda: all(e.id in cm.ids for e in burst))
        await asyncio.sleep(0.2)
        since = [after.id, *(e.id for e in burst)]
        assert [i for i in cm.ids if i in since] == since
    finally:
        await proxy.close()


async def test_a_consumer_killed_mid_batch_gets_its_messages_redelivered(rabbit_factory):
    first = await rabbit_factory()
    await first.declare(ROUTES)
    started = asyncio.Event()
    seen: list[str] = []

    async def stuck(e: CloudEvent) -> None:
        seen.append(e.id)
        started.set()
        await asyncio.Event().wait()

    await first.consume("cm", stuck)
    sent = [event(n=i) for i in range(5)]
    for e in sent:
        await first.publish(e)
    await asyncio.wait_for(started.wait(), 10)
    # Crash: the connection goes away with 5 deliveries unacked (one in the handler, 4 prefetched).
    conn = first._conn
    first._conn = None
    await conn.close()
    first._consumers["cm"].worker.cancel()

    second = await rabbit_factory()
    got = Recorder()
    await second.consume("cm", got)
    await eventually(lambda: len(got.events) == 5)
    assert got.ids == [e.id for e in sent]
    assert seen == [sent[0].id]


async def test_broker_dead_letters_after_repeated_crashes(rabbit_factory, rabbitmq_url):
    """The safety net: a message whose consumer dies every time is dead-lettered by the broker."""
    bus = await rabbit_factory()
    await bus.declare(ROUTES)
    sent = event()
    await bus.publish(sent)
    conn = await aio_pika.connect(rabbitmq_url)
    try:
        for _ in range(DELIVERY_LIMIT + 1):
            ch = await conn.channel()
            queue = await ch.get_queue(bus.physical("cm"))
            message = await queue.get(no_ack=False, timeout=5)
            assert message.message_id == sent.id
            await ch.close()  # never acked
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
    (letter,) = await eventually(bus.dead_letters)
    assert letter.id == sent.id and letter.queue == "cm"
    assert letter.reason.startswith("broker: delivery_limit")
    assert letter.attempts == DELIVERY_LIMIT + 1
    assert await bus.replay([sent.id]) == 1
    got = Recorder()
    assert await bus.drain("cm", got) == 1
    assert got.ids == [sent.id]


async def test_consuming_an_undeclared_queue_is_an_error(rabbit_factory):
    bus = await rabbit_factory()
    await bus.declare(ROUTES)
    with pytest.raises(BusError, match="not declared"):
        await bus.consume("nope", Recorder())
    # the bus is still fine
    got = Recorder()
    await bus.consume("cm", got)
    await bus.publish(event())
    await eventually(lambda: got.events)
