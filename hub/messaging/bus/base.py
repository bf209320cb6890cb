"""The bus interface every engine implements (embedded, RabbitMQ).

Semantics both engines share (tests/bus/test_behaviour.py runs against each):
- `declare` builds the topology idempotently: one durable queue per route, bound by its patterns
  (AMQP topic syntax: `*` one word, `#` zero or more words).
- `publish` returns once the event is stored by the engine (publisher confirm); an event that no
  queue is bound for raises `Unroutable` instead of vanishing.
- `consume` delivers each message to the handler; the message is settled only after the handler
  returns. A handler that raises is retried with back-off; after `delivery_limit` attempts, or at once
  for `PermanentError` / `MalformedEvent`, the message goes to the dead-letter queue with the reason.
- Ordering within a queue is publish order while nothing is retried.
- `broadcast` listeners count as routes: an event only they match is routed, not lost silently.
- A handler that also takes batches (`BatchHandler`) is handed, in order, every message the queue has
  ready (up to `settings.consume_batch`) in one call, and all of them are settled after it returns. When
  that call raises, each message of the batch is delivered again on its own, so one bad message gets its
  own retries and dead letter and the others go through.
- `publish_many` publishes in order and tells, per event, what became of it.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol, runtime_checkable

from hub.events import CloudEvent
from hub.ports import PermanentError

__all__ = ["BatchHandler", "Bus", "BusError", "BusUnavailable", "DeadLetter", "Handler", "PermanentError",
           "Progress", "QueueStats", "Route", "Unroutable", "topic_matches"]

Handler = Callable[[CloudEvent], Awaitable[None]]
# A long operation's report: (done so far, total or None when unknown). The CLI shows it (hub.cli.progress).
Progress = Callable[[int, int | None], None]


@runtime_checkable
class BatchHandler(Protocol):
    """A handler that also applies several events at once, in order, all or none."""

    async def __call__(self, event: CloudEvent) -> None: ...

    async def batch(self, events: Sequence[CloudEvent]) -> None: ...


class BusError(Exception):
    """The bus could not do what was asked."""


class Unroutable(BusError):
    """No queue is bound for the event's type: publishing it would lose it."""


class BusUnavailable(BusError):
    """The broker cannot be reached right now; the caller keeps the event and tries later."""


@dataclass(frozen=True, slots=True)
class Route:
    """One durable queue and the routing-key patterns bound to it."""

    queue: str
    patterns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str  # the message id (the CloudEvent id when the body could be read)
    queue: str
    reason: str
    attempts: int
    body: bytes
    dead_at: datetime | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    depth: int  # messages waiting (ready)
    dead_letters: int


class Bus(ABC):
    """A message bus engine. One instance per hub process."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def declare(self, routes: Sequence[Route]) -> None:
        """Create queues and bindings (idempotent)."""

    @abstractmethod
    async def publish(self, event: CloudEvent) -> None:
        """Publish with confirm; raises Unroutable or BusUnavailable."""

    async def publish_many(self, events: Sequence[CloudEvent]) -> list[BusError | None]:
        """Publish in order; per event None (confirmed) or the BusError it met. After a BusUnavailable
        the rest are not tried (they fail alike), so what was confirmed is a prefix plus unroutables."""
        outcomes: list[BusError | None] = []
        for event in events:
            try:
                await self.publish(event)
                outcomes.append(None)
            except Unroutable as exc:
                outcomes.append(exc)
            except BusError as exc:
                outcomes.extend(exc for _ in range(len(events) - len(outcomes)))
                break
        return outcomes

    @abstractmethod
    async def publish_pack(self, queue: str, bodies: Sequence[bytes], pack_id: str) -> None:
        """Publish events (their JSON) as one message, a pack, to `queue` alone (a batch flow's queue:
        no routing by type), with confirm; raises Unroutable when the queue is not declared, or
        BusUnavailable."""

    def lagging(self) -> bool:
        """Are this process's consumers behind (one found a full batch ready when it last took one)? The
        API paces new events on it, so that writers cannot starve the delivery of what they wrote."""
        return False

    @abstractmethod
    async def consume(self, queue: str, handler: Handler) -> None:
        """Start delivering the queue's messages to the handler until `cancel` or `close`."""

    @abstractmethod
    async def broadcast(self, patterns: Sequence[str], handler: Handler) -> None:
        """Also hand matching events to this process, whatever other processes do: a transient,
        per-process subscription (at most once, nothing kept while the process is down). For cache
        invalidation and live pushes, never for effects."""

    @abstractmethod
    async def cancel(self, queue: str) -> None:
        """Stop consuming a queue; unsettled messages return to it."""

    @abstractmethod
    async def drain(self, queue: str, handler: Handler) -> int:
        """Deliver what the queue holds now, then return how many were handled (batch flows)."""

    @abstractmethod
    async def dead_letters(self, queue: str | None = None) -> list[DeadLetter]: ...

    @abstractmethod
    async def replay(self, ids: Sequence[str] | None = None, progress: Progress | None = None) -> int:
        """Move dead letters (all when ids is None) back to their queues; returns how many. `progress`,
        when given, is told how many are back so far (and how many in all, when the engine knows)."""

    @abstractmethod
    async def stats(self) -> list[QueueStats]: ...


@lru_cache(maxsize=1024)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for word in pattern.split("."):
        if word == "#":
            parts.append(r"(?:[^.]+(?:\.[^.]+)*)?")
        elif word == "*":
            parts.append(r"[^.]+")
        else:
            parts.append(re.escape(word))
    # '#' may also swallow the dot beside it, as in AMQP ("a.#" matches "a").
    regex = r"\.".join(parts).replace(r"\.(?:[^.]+(?:\.[^.]+)*)?", r"(?:\.[^.]+)*")
    regex = regex.replace(r"(?:[^.]+(?:\.[^.]+)*)?\.", r"(?:[^.]+\.)*")
    return re.compile(f"^{regex}$")


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic-exchange matching."""
    return _pattern_regex(pattern).match(routing_key) is not None
