"""create_bus picks the engine from the broker URL."""

from __future__ import annotations

import pytest

from hub.config import Settings
from hub.messaging.bus import create_bus
from hub.messaging.bus.embedded import EmbeddedBus
from hub.messaging.bus.rabbitmq import RabbitBus


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("memory://", EmbeddedBus),
        ("amqp://guest:guest@127.0.0.1:5672/", RabbitBus),
        ("amqps://user:pw@broker.example:5671/vhost", RabbitBus),
    ],
)
def test_create_bus_by_url(url, kind, store_engine_sync):
    assert isinstance(create_bus(Settings(broker_url=url), store_engine_sync), kind)


def test_create_bus_rejects_other_schemes(store_engine_sync):
    with pytest.raises(ValueError, match="kafka://"):
        create_bus(Settings(broker_url="kafka://x"), store_engine_sync)


@pytest.fixture
def store_engine_sync(sqlite_url):
    from hub.store.db import create_engine

    return create_engine(sqlite_url)
