"""Use cases: start a contact (identify or create the customer) and end it.

The hub owns contacts and the identity graph; the contact registry (the CRM role) is told about the
customer and the contact in the same transaction, and may answer with its own customer id, which the
hub links as a key of kind <registry system name>.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.core import reads
from hub.core.errors import BadInput, ContactEnded, UnknownContact
from hub.core.identity import IdentityGraph, new_customer_id
from hub.events import (
    CONTACT_ENDED,
    CONTACT_STARTED,
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
    CloudEvent,
    ContactStarted,
    CustomerData,
    make,
    utcnow,
)
from hub.events import (
    ContactEnded as ContactEndedData,
)
from hub.messaging.outbox import Outbox
from hub.model import HUB_SYSTEM, Channel, Contact, CustomerFacts, Key, KeyKind
from hub.ports import ContactRegistry
from hub.store.db import reading
from hub.store.tables import contacts as contacts_table

log = logging.getLogger(__name__)

Tx = AsyncConnection
# When keys point at different customers, the strongest key decides who the visitor is.
KEY_STRENGTH = (KeyKind.CUSTOMER_ID, KeyKind.EMAIL, KeyKind.PHONE, KeyKind.COOKIE_ID)
# How many recent contacts the view carries per customer.
RECENT_CONTACTS = 20
_NEW_CONTACT = contacts_table.insert()  # built once: every startContact runs it


@dataclass(frozen=True, slots=True)
class Started:
    contact: Contact
    customer_id: str
    created: bool
    # Keys given but not linked: a placeholder value, or (for a caller that may not merge) a key of
    # another customer or one that would join a customer another key identifies.
    unlinked: tuple[Key, ...] = ()


# Told, after commit, which customers' data a system changed (hub.messaging.reactions: this process's
# caches and subscribers, and the announcement to the other hub processes).
Committed = Callable[[str, Sequence[str]], None]


class ContactService:
    def __init__(
        self,
        engine: AsyncEngine,
        registry_system: str,
        registry: ContactRegistry,
        outbox: Outbox,
        source: str,
        committed: Committed,
        known_keys: MutableMapping[Key, str] | None = None,
        known_customers: MutableMapping[str, bool] | None = None,
    ):
        self._engine = engine
        self._reader = reading(engine)
        self._registry_system = registry_system
        self._registry = registry
        self._outbox = outbox
        self._graph = IdentityGraph()
        self._source = source
        self._committed = committed
        # Keys found before -> their customer. A key, once linked, is never moved to another customer
        # (keys are only added), so a positive answer stays true; an unknown key is asked every time.
        self._known_keys: MutableMapping[Key, str] = known_keys if known_keys is not None else {}
        # Customers known to exist (the view's map): one started here exists, the view need not ask.
        self._known_customers: MutableMapping[str, bool] = {} if known_customers is None else known_customers

    async def start(
        self,
        channel: Channel,
        keys: Sequence[Key],
        name: str | None,
        *,
        may_merge: bool = True,
        blocked: frozenset[str] = frozenset(),
    ) -> Started:
        """Identify (or create) the customer and register the contact.

        `may_merge` (a caller with identity:merge, e.g. a logged-in session's backend): keys given
        together are linked to the customer of the strongest one. Without it, no key is attached to a
        customer that another key already identifies: when the keys would join customers, the contact
        goes to the customer of the weakest key given (the channel's own: a cookie before a phone, an
        email, a customer number; a new customer when it is new) and the other keys stay unlinked, so a
        visitor who sends someone else's email beside their own cookie does not get that person's
        profile. `blocked` values (placeholders) identify no one."""
        if not keys:
            raise BadInput(
                "identification needs at least one key: email, phone, customerId or cookieId",
                field="identification",
            )
        refused = [k for k in keys if _blocked(k, blocked)]
        if refused:
            keys = [k for k in keys if k not in refused]
            if not keys:
                raise BadInput(
                    "the identification holds only placeholder values that identify no one",
                    field="identification",
                )
        name = name.strip() if name else None
        if name is not None and not (0 < len(name) <= 200):
            raise BadInput("name must be 1 to 200 characters", field="name")
        # Two first contacts with the same new key race to create the customer: the loser retries and
        # finds the winner's customer.
        for attempt in range(3):
            try:
                started, mine, told = await self._start_once(channel, keys, name, may_merge)
            except IntegrityError:
                if attempt == 2:
                    raise
                continue
            # The registry's profile of the customer changed when it was told facts; a contact alone
            # changes the hub's own data (the view's contacts), and the registry's cached profile stays.
            self._committed(self._registry_system if told else HUB_SYSTEM, [started.customer_id])
            self._known_customers[started.customer_id] = True
            for key in mine:  # committed: the visitor's next contact need not look them up
                self._known_keys[key] = started.customer_id
            if refused:
                started = replace(started, unlinked=(*refused, *started.unlinked))
            return started
        raise AssertionError("unreachable")

    async def _start_once(
        self, channel: Channel, keys: Sequence[Key], name: str | None, may_merge: bool
    ) -> tuple[Started, list[Key], bool]:
        async with self._engine.begin() as tx:
            # A key once linked stays with its customer: only keys not seen linked before are looked up.
            known = self._known_keys
            found = {k: known[k] for k in keys if k in known}
            unsure = [k for k in keys if k not in found]
            if unsure:
                found.update(await self._graph.lookup(tx, unsure))
            owners = set(found.values())
            joins = len(owners) > 1 or (len(owners) == 1 and len(found) < len(keys))
            attach = list(keys)
            if joins and not may_merge:
                anchor = _weakest(keys)
                attach = [anchor]
                found = {anchor: found[anchor]} if anchor in found else {}
            customer_id = _strongest(found)
            created = customer_id is None
            if customer_id is None:
                customer_id = new_customer_id()
                await self._graph.create(tx, customer_id)
            linked = await self._graph.link(tx, customer_id, [k for k in attach if k not in found])
            if created and len(linked) < len(attach):
                raise IntegrityError("first contact raced with another", None, Exception("key taken"))
            unlinked = tuple(k for k in keys if k not in attach)
            mine = [k for k in keys if found.get(k) == customer_id or k in linked]
            facts = _facts(customer_id, name, mine, {})
            told = bool(created or linked or name)  # a returning visitor with nothing new: it knows
            if told:
                await self._tell_registry(tx, facts)
            contact = Contact(
                id=f"con_{uuid.uuid4().hex[:20]}",
                customer_id=customer_id,
                channel=channel,
                started_at=utcnow(),
            )
            await tx.execute(
                _NEW_CONTACT,
                {
                    "id": contact.id,
                    "customer_id": customer_id,
                    "channel": channel.value,
                    "started_at": contact.started_at,
                },
            )
            await self._registry.register_contact(tx, contact)
            events = [
                make(
                    CONTACT_STARTED,
                    ContactStarted(
                        contactId=contact.id,
                        customerId=customer_id,
                        channel=channel,
                        startedAt=contact.started_at,
                    ),
                    source=self._source,
                    subject=customer_id,
                    correlationid=contact.id,
                )
            ]
            if told:
                events.append(
                    self._customer_event(CUSTOMER_CREATED if created else CUSTOMER_UPDATED, facts, contact.id)
                )
            await self._record(tx, customer_id, events)
        return Started(contact, customer_id, created, unlinked), mine, told

    async def _tell_registry(self, tx: Tx, facts: CustomerFacts) -> None:
        own_id = await self._registry.upsert_customer(tx, facts)
        if own_id:
            # An external CRM's own id (CRM-000123) becomes a key of its own kind: the view reads the
            # CRM by it, and callers may identify the customer by it.
            await self._graph.link(tx, facts.customer_id, [Key(self._registry_system, str(own_id))])

    async def find(self, keys: Sequence[Key]) -> str | None:
        known = self._known_keys
        found = {k: known[k] for k in keys if k in known}
        unsure = [k for k in keys if k not in found]
        if unsure:
            async with self._reader.connect() as conn:
                fetched = await self._graph.lookup(conn, unsure)
            known.update(fetched)
            found.update(fetched)
        if len(found) < len(set(keys)):
            # A key unknown now may be linked any moment, and may outrank the ones found: not kept.
            reads.uncacheable()
        return _strongest(found)

    async def end(self, contact_id: str, outcome: str | None) -> Contact:
        if outcome is not None and len(outcome) > 200:
            raise BadInput("outcome must be at most 200 characters", field="outcome")
        async with self._engine.begin() as tx:
            contact = await self.require_open(tx, contact_id)
            ended_at = utcnow()
            result = await tx.execute(
                contacts_table.update()
                .where(contacts_table.c.id == contact.id, contacts_table.c.ended_at.is_(None))
                .values(ended_at=ended_at, outcome=outcome)
            )
            if result.rowcount != 1:  # ended by a concurrent call
                raise ContactEnded(f"contact {contact_id!r} has ended", contactId=contact_id)
            ended = Contact(
                contact.id, contact.customer_id, contact.channel, contact.started_at, ended_at, outcome
            )
            await self._registry.end_contact(tx, ended)
            await self._record(
                tx,
                contact.customer_id,
                [
                    make(
                        CONTACT_ENDED,
                        ContactEndedData(
                            contactId=contact.id,
                            customerId=contact.customer_id,
                            channel=contact.channel,
                            outcome=outcome,
                        ),
                        source=self._source,
                        subject=contact.customer_id,
                        correlationid=contact.id,
                    )
                ],
            )
        self._committed(HUB_SYSTEM, [contact.customer_id])  # the contact's end: no customer facts
        return ended

    async def get(self, tx: Tx | None, contact_id: str) -> Contact | None:
        stmt = select(contacts_table).where(contacts_table.c.id == contact_id)
        if tx is not None:
            row = (await tx.execute(stmt)).first()
        else:
            async with self._reader.connect() as conn:
                row = (await conn.execute(stmt)).first()
        return _contact(row) if row else None

    async def require_open(self, tx: Tx | None, contact_id: str) -> Contact:
        if not contact_id or len(contact_id) > 40:
            raise UnknownContact(f"no contact with id {contact_id[:40]!r}", contactId=contact_id[:40])
        contact = await self.get(tx, contact_id)
        if contact is None:
            raise UnknownContact(f"no contact with id {contact_id!r}", contactId=contact_id)
        if contact.ended_at is not None:
            raise ContactEnded(f"contact {contact_id!r} has ended", contactId=contact_id)
        return contact

    async def recent(self, customer_ids: Sequence[str], conn: Tx) -> dict[str, list[Contact]]:
        """The latest contacts per customer, newest first (the view's `contacts`)."""
        ids = list(dict.fromkeys(customer_ids))
        out: dict[str, list[Contact]] = defaultdict(list)
        if not ids:
            return out
        # The newest few per customer, counted in the database: a customer with years of contacts costs
        # no more to read than a new one.
        rank = (
            func.row_number()
            .over(partition_by=contacts_table.c.customer_id, order_by=contacts_table.c.started_at.desc())
            .label("rank")
        )
        ranked = select(contacts_table, rank).where(contacts_table.c.customer_id.in_(ids)).subquery()
        rows = await conn.execute(
            select(ranked).where(ranked.c.rank <= RECENT_CONTACTS).order_by(ranked.c.started_at.desc())
        )
        for r in rows:
            out[r.customer_id].append(_contact(r))
        return out

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
            facts = _facts(customer_id, name, keys, attributes)
            await self._tell_registry(tx, facts)
            await self._record(tx, customer_id, [self._customer_event(CUSTOMER_CREATED, facts, None)])
        self._committed(self._registry_system, [customer_id])
        return customer_id

    async def _record(self, tx: Tx, customer_id: str, events: list[CloudEvent]) -> None:
        await self._outbox.add(tx, events)

    def _customer_event(self, type_: str, facts: CustomerFacts, contact_id: str | None) -> CloudEvent:
        return make(
            type_,
            CustomerData(
                customerId=facts.customer_id,
                name=facts.name,
                emails=list(facts.emails),
                phones=list(facts.phones),
                attributes=dict(facts.attributes),
            ),
            source=self._source,
            subject=facts.customer_id,
            correlationid=contact_id,
        )


def _facts(
    customer_id: str, name: str | None, keys: Sequence[Key], attributes: dict[str, Any]
) -> CustomerFacts:
    return CustomerFacts(
        customer_id=customer_id,
        name=name,
        emails=tuple(k.value for k in keys if k.kind == KeyKind.EMAIL),
        phones=tuple(k.value for k in keys if k.kind == KeyKind.PHONE),
        attributes=dict(attributes),
    )


def _contact(r: Any) -> Contact:
    return Contact(
        id=r.id,
        customer_id=r.customer_id,
        channel=Channel(r.channel),
        started_at=r.started_at,
        ended_at=r.ended_at,
        outcome=r.outcome,
    )


def _weakest(keys: Sequence[Key]) -> Key:
    """The key most the channel's own: a cookie, then a phone, an email, a system's id, a number."""
    order = {KeyKind.COOKIE_ID: 0, KeyKind.PHONE: 1, KeyKind.EMAIL: 2, KeyKind.CUSTOMER_ID: 4}
    return min(keys, key=lambda k: order.get(k.kind, 3))  # type: ignore[call-overload]


def _blocked(key: Key, blocked: frozenset[str]) -> bool:
    """A placeholder: a listed value, or a phone number of one repeated digit (0000000000)."""
    value = key.value.lower()
    if value in blocked:
        return True
    if key.kind == KeyKind.PHONE:
        try:
            national = str(phonenumbers.parse(value).national_number)
        except phonenumbers.NumberParseException:
            return False
        return national in blocked or f"0{national}" in blocked or len(set(national)) == 1
    return False


def _strongest(found: dict[Key, str]) -> str | None:
    """The customer of the strongest key found: a customer number, then a system's own id, then the
    channel's keys (email, phone, cookie)."""
    builtin = {str(k) for k in KeyKind}
    for key, cid in found.items():
        if key.kind == KeyKind.CUSTOMER_ID:
            return cid
    for key, cid in found.items():
        if key.kind not in builtin:
            return cid
    for kind in KEY_STRENGTH[1:]:
        for key, cid in found.items():
            if key.kind == kind:
                return cid
    return None
