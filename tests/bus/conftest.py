"""Bus fixtures: one `bus` fixture per engine (embedded on a temp SQLite store, RabbitMQ on the real
broker with a fresh namespace per test, whose queues and exchanges are deleted afterwards)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hub.config import Settings
from hub.events import CloudEvent
from hub.messaging.bus import Bus
from hub.messaging.bus.embedded import EmbeddedBus
from hub.messaging.bus.rabbitmq import RabbitBus
from tests.support import delete_topology

DELIVERY_LIMIT = 3


def bus_settings(**overrides) -> Settings:
    values = dict(delivery_limit=DELIVERY_LIMIT, retry_backoff_seconds=0.05, prefetch=10)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def rabbit_factory(rabbitmq_url, bus_namespace) -> AsyncIterator:
    """Make RabbitBus instances on this test's namespace; all closed and the topology deleted after."""
    made: list[RabbitBus] = []

    async def make(url: str | None = None, start: bool = True, **kwargs) -> RabbitBus:
        options = {"reconnect_interval": kwargs.pop("reconnect_interval", 0.3)}
        settings = bus_settings(broker_url=url or rabbitmq_url, bus_namespace=bus_namespace, **kwargs)
        bus = RabbitBus(settings, **options)
        made.append(bus)
        if start:
            await bus.start()
        return bus

    yield make
    queues: set[str] = set()
    for bus in made:
        queues.update(bus._routes)
        await bus.close()
    await delete_topology(rabbitmq_url, bus_namespace, queues)


@pytest.fixture(params=["embedded", "rabbitmq"])
def engine_kind(request):
    """The engine under test and what it needs (a sync fixture, so it may pull async ones in)."""
    if request.param == "embedded":
        return request.param, request.getfixturevalue("store_engine")
    return request.param, request.getfixturevalue("rabbit_factory")


@pytest.fixture
async def bus(engine_kind) -> AsyncIterator[Bus]:
    kind, dependency = engine_kind
    if kind == "embedded":
        embedded = EmbeddedBus(dependency, bus_settings())
        await embedded.start()
        yield embedded
        await embedded.close()
    else:
        yield await dependency()


class Recorder:
    """A handler that records the events it was given; `fail` decides per event whether to raise."""

    def __init__(self, fail=None) -> None:
        self.events: list[CloudEvent] = []
        self.calls: list[str] = []
        self.fail = fail
        self.changed = asyncio.Event()

    async def __call__(self, event: CloudEvent) -> None:
        self.calls.append(event.id)
        self.changed.set()
        if self.fail is not None:
            error = self.fail(event, self.calls.count(event.id))
            if error is not None:
                raise error
        self.events.append(event)

    @property
    def ids(self) -> list[str]:
        return [event.id for event in self.events]
