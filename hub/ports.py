"""Ports: what the hub needs from a system. Adapters implement them; the core only sees these.

Built-in systems share the hub's store, so the write ports take the caller's open connection
(`tx`): their effect commits with the hub's own state and outbox row, or not at all.
An external system ignores `tx` and is made safe by idempotency keys (the event id).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.config import Settings
from hub.core.model import Channel, Contact, ContactEvent, NextBestAction, Offer
from hub.events import CloudEvent

Tx = AsyncConnection
Profile = dict[str, Any]


class NotSupported(NotImplementedError):
    """A port that an adapter declares but does not implement says so instead of faking it."""


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class AdapterContext:
    """What the registry hands an adapter when it builds it."""

    system: str
    settings: Settings
    engine: AsyncEngine
    config: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    system: str

    async def start(self) -> None: ...

    async def check(self) -> Health: ...

    async def close(self) -> None: ...


@runtime_checkable
class ProfileSource(Protocol):
    async def fetch(self, customer_ids: Sequence[str]) -> dict[str, Profile]:
        """One batched read: a partial profile per known customer id (unknown ids are left out)."""
        ...


@runtime_checkable
class ContactRegistry(Protocol):
    async def upsert_customer(
        self, tx: Tx, customer_id: str, name: str | None, emails: Sequence[str], phones: Sequence[str],
        attributes: dict[str, Any] | None = None,
    ) -> None: ...

    async def register_contact(self, tx: Tx, contact: Contact) -> None: ...

    async def end_contact(self, tx: Tx, contact_id: str, outcome: str | None) -> Contact | None: ...

    async def get_contact(self, tx: Tx | None, contact_id: str) -> Contact | None: ...


@runtime_checkable
class DecisionEngine(Protocol):
    async def offers(self) -> list[Offer]: ...

    async def decide(
        self,
        customer_id: str,
        channel: Channel | None,
        limit: int,
        pending: Sequence[ContactEvent] = (),
    ) -> list[NextBestAction]:
        """Rank NBAs; `pending` are accepted events not yet consumed, applied as if they were."""
        ...


@runtime_checkable
class EventConsumer(Protocol):
    async def consume(self, tx: Tx, event: CloudEvent) -> set[str]:
        """Apply one event in `tx`; return the customer ids whose view or NBAs changed."""
        ...
