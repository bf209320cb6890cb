"""What the parts of the RabbitMQ bus share: the errors that mean "the broker is not reachable",
the scratch-channel factory's type, settling a delivery, and an id for a message that has none."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from aio_pika.abc import AbstractRobustChannel
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

# One logger for the whole engine (`__package__`): the log names it as before the split.
log = logging.getLogger(__package__)

NETWORK_ERRORS = (*CONNECTION_EXCEPTIONS, TimeoutError, ConnectionError)

# A short-lived channel; closing it returns whatever it holds unacked to its queue (RabbitBus owns it).
ScratchChannel = Callable[[], AbstractAsyncContextManager[AbstractRobustChannel]]


def body_id(body: bytes) -> str:
    return "sha1:" + hashlib.sha1(body, usedforsecurity=False).hexdigest()


async def settle(operation: Awaitable[None]) -> None:
    """Ack/nack; when the channel is gone the broker has already returned the message."""
    try:
        await operation
    except Exception as exc:
        log.debug("rabbitmq bus: settle failed (the broker redelivers): %s", exc)
