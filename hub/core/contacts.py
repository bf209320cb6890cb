"""Use cases: start a contact (identify or create the customer) and end it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.errors import BadInput, ContactEnded, UnknownContact
from hub.core.identity import IdentityGraph, Key, new_customer_id
from hub.core.model import CONTACT_ENDED, CONTACT_STARTED, CUSTOMER_CREATED, Channel, Contact, KeyKind
from hub.core.outbox import Outbox
from hub.events import CloudEvent, utcnow
from hub.ports import ContactRegistry, Tx

log = logging.getLogger(__name__)

CUSTOMER_UPDATED = "customer.updated"
# When keys point at different customers, the strongest key decides who the visitor is.
KEY_STRENGTH = (KeyKind.CUSTOMER_ID, KeyKind.EMAIL, KeyKind.PHONE, KeyKind.COOKIE_ID)


@dataclass(frozen=True, slots=True)
class Started:
    contact: Contact
    customer_id: str
    created: bool


class ContactService:
    def __init__(
        self,
        engine: AsyncEngine,
        registry: ContactRegistry,
        outbox: Outbox,
        source: str,
        committed: Callable[[Sequence[str]], None],
        announce: Callable[[Sequence[str]], CloudEvent],
    ):
        self._announce = announce  # the change announcement for the registry's data
        self._engine = engine
        self._registry = registry
        self._outbox = outbox
        self._graph = IdentityGraph()
        self._source = source
        self._committed = committed  # told which customers changed, after commit

    async def start(self, channel: Channel, keys: Sequence[Key], name: str | None) -> Started:
        if not keys:
            raise BadInput(
                "identification needs at least one key: email, phone, customerId or cookieId",
                field="identification",
            )
        name = name.strip() if name else None
        if name is not None and not (0 < len(name) <= 200):
            raise BadInput("name must be 1 to 200 characters", field="name")
        # Two first contacts with the same new key race to create the customer: the loser retries and
        # finds the winner's customer.
        for attempt in range(3):
            try:
                started = await self._start_once(channel, keys, name)
            except IntegrityError:
                if attempt == 2:
                    raise
                continue
            self._committed([started.customer_id])
            return started
        raise AssertionError("unreachable")

    async def _start_once(self, channel: Channel, keys: Sequence[Key], name: str | None) -> Started:
        async with self._engine.begin() as tx:
            found = await self._graph.lookup(tx, keys)
            customer_id = _strongest(found)
            created = customer_id is None
            if customer_id is None:
                customer_id = new_customer_id()
                await self._graph.create(tx, customer_id)
            linked = await self._graph.link(tx, customer_id, [k for k in keys if k not in found])
            if created and len(linked) < len(keys):
                raise IntegrityError("first contact raced with another", None, Exception("key taken"))
            mine = [k for k in keys if found.get(k) == customer_id or k in linked]
            emails = [k.value for k in mine if k.kind is KeyKind.EMAIL]
            phones = [k.value for k in mine if k.kind is KeyKind.PHONE]
            await self._registry.upsert_customer(tx, customer_id, name, emails, phones)
            contact = Contact(
                id=f"con_{uuid.uuid4().hex[:20]}",
                customer_id=customer_id,
                channel=channel,
                started_at=utcnow(),
            )
            await self._registry.register_contact(tx, contact)
            events = [
                self._event(
                    CONTACT_STARTED,
                    customer_id,
                    contact.id,
                    {
                        "contactId": contact.id,
                        "customerId": customer_id,
                        "channel": channel.value,
                        "startedAt": contact.started_at.isoformat(),
                    },
                )
            ]
            if created or linked or name:
                events.append(
                    self._customer_event(
                        CUSTOMER_CREATED if created else CUSTOMER_UPDATED,
                        customer_id,
                        contact.id,
                        name,
                        emails,
                        phones,
                        {},
                    )
                )
            await self._record(tx, customer_id, events)
        return Started(contact, customer_id, created)

    async def find(self, keys: Sequence[Key]) -> str | None:
        async with self._engine.connect() as conn:
            return _strongest(await self._graph.lookup(conn, keys))

    async def end(self, contact_id: str, outcome: str | None) -> Contact:
        if outcome is not None and len(outcome) > 200:
            raise BadInput("outcome must be at most 200 characters", field="outcome")
        async with self._engine.begin() as tx:
            contact = await self.require_open(tx, contact_id)
            ended = await self._registry.end_contact(tx, contact.id, outcome)
            assert ended is not None
            await self._record(
                tx,
                contact.customer_id,
                [
                    self._event(
                        CONTACT_ENDED,
                        contact.customer_id,
                        contact.id,
                        {
                            "contactId": contact.id,
                            "customerId": contact.customer_id,
                            "channel": contact.channel.value,
                            "outcome": outcome,
                        },
                    )
                ],
            )
        self._committed([contact.customer_id])
        return ended

    async def require_open(self, tx: Tx | None, contact_id: str) -> Contact:
        contact = await self._registry.get_contact(tx, contact_id)
        if contact is None:
            raise UnknownContact(f"no contact with id {contact_id!r}", contactId=contact_id)
        if contact.ended_at is not None:
            raise ContactEnded(f"contact {contact_id!r} has ended", contactId=contact_id)
        return contact

    async def import_customer(
        self, keys: Sequence[Key], name: str | None, attributes: dict[str, Any]
    ) -> str | None:
        """Create a customer with master data unless one of its keys is known (demo data, imports)."""
        async with self._engine.begin() as tx:
            if await self._graph.lookup(tx, keys):
                return None
            customer_id = new_customer_id()
            await self._graph.create(tx, customer_id)
            await self._graph.link(tx, customer_id, keys)
            emails = [k.value for k in keys if k.kind is KeyKind.EMAIL]
            phones = [k.value for k in keys if k.kind is KeyKind.PHONE]
            await self._registry.upsert_customer(tx, customer_id, name, emails, phones, attributes)
            await self._record(
                tx,
                customer_id,
                [self._customer_event(CUSTOMER_CREATED, customer_id, None, name, emails, phones, attributes)],
            )
        self._committed([customer_id])
        return customer_id

    async def _record(self, tx: Tx, customer_id: str, events: list[CloudEvent]) -> None:
        await self._outbox.add(tx, [*events, self._announce([customer_id])])

    def _event(
        self, type_: str, customer_id: str, contact_id: str | None, data: dict[str, Any]
    ) -> CloudEvent:
        return CloudEvent(
            type=type_, source=self._source, subject=customer_id, data=data, correlationid=contact_id
        )

    def _customer_event(
        self,
        type_: str,
        customer_id: str,
        contact_id: str | None,
        name: str | None,
        emails: list[str],
        phones: list[str],
        attributes: dict[str, Any],
    ) -> CloudEvent:
        return self._event(
            type_,
            customer_id,
            contact_id,
            {
                "customerId": customer_id,
                "name": name,
                "emails": emails,
                "phones": phones,
                "attributes": attributes,
            },
        )


def _strongest(found: dict[Key, str]) -> str | None:
    for kind in KEY_STRENGTH:
        for key, cid in found.items():
            if key.kind is kind:
                return cid
    return None
