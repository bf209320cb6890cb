"""The hub's message bus: `create_bus` picks the engine from `settings.broker_url`.

- `memory://` -> EmbeddedBus (in-process, durable in the hub's store), the one-process default.
- `amqp://` / `amqps://` -> RabbitBus (aio-pika, quorum queues, publisher confirms).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config import Settings
from hub.messaging.bus.base import (
    Bus,
    BusError,
    BusUnavailable,
    DeadLetter,
    Handler,
    PermanentError,
    QueueStats,
    Route,
    Unroutable,
    topic_matches,
)


def create_bus(settings: Settings, engine: AsyncEngine) -> Bus:
    """The engine for `settings.broker_url`; call `await bus.start()` before use."""
    scheme = settings.broker_url.split("://", 1)[0].lower() if "://" in settings.broker_url else ""
    if scheme == "memory":
        from hub.messaging.bus.embedded import EmbeddedBus

        return EmbeddedBus(engine, settings)
    if scheme in {"amqp", "amqps"}:
        from hub.messaging.bus.rabbitmq import RabbitBus

        return RabbitBus(settings)
    raise ValueError(
        f"HUB_BROKER_URL {settings.broker_url!r} is not supported: use memory:// or amqp(s)://host/vhost"
    )


__all__ = [
    "Bus",
    "BusError",
    "BusUnavailable",
    "DeadLetter",
    "Handler",
    "PermanentError",
    "QueueStats",
    "Route",
    "Unroutable",
    "create_bus",
    "topic_matches",
]
