"""The hub as a flow's destination (`destination: hub` in a flow): events other systems send to the hub's
own use cases, e.g. an external back office reporting a request's status. One entry per event type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from hub.events import CloudEvent
from hub.ports import PermanentError, Tx

Apply = Callable[[Tx, CloudEvent], Awaitable[set[str]]]


class Inbound:
    """An EventConsumer in the hub's store (transactional): applied once per event id, like any
    destination, by hub.messaging.consumer.IdempotentConsumer."""

    def __init__(self, handlers: Mapping[str, Apply]):
        self._handlers = dict(handlers)

    async def consume(self, tx: Tx, event: CloudEvent) -> set[str]:
        apply = self._handlers.get(event.type)
        if apply is None:  # a flow into the hub with a type it has no use for: a mapping mistake
            raise PermanentError(f"the hub takes no {event.type} events")
        return await apply(tx, event)
