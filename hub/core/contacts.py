"""Use cases: start a contact (identify or create the customer) and end it.

The hub owns contacts and the identity graph; the contact registry (the CRM role) is told about the
customer and the contact in the same transaction, and may answer with its own customer id, which the
hub links as a key of kind <registry system name>.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import phonenumbers
from sqlalchemy import bindparam, func, select
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
from hub.ports import BatchContactRegistry, ContactRegistry
from hub.store.db import reading
from hub.store.direct import fetch_rows, insert_rows
from hub.store.tables import contacts as contacts_table
from hub.store.types import any_of

# Every recordContactEvents reads its contact: built once (building it costs more than running it).
_CONTACT = select(contacts_table).where(contacts_table.c.id == bindparam("id"))

log = logging.getLogger(__name__)

Tx = AsyncConnection
# When keys point at different customers, the strongest key decides who the visitor is.
KEY_STRENGTH = (KeyKind.CUSTOMER_ID, KeyKind.EMAIL, KeyKind.PHONE, KeyKind.COOKIE_ID)
# How many recent contacts the view carries per customer.
RECENT_CONTACTS = 20


# The most visits one transaction starts (group commit): bounds a group's statements and locks.
GROUP_MOST = 32


@dataclass(frozen=True, slots=True)
class Started:
    contact: Contact
    customer_id: str
    created: bool
    # Keys given but not linked: a placeholder value, or (for a caller that may not merge) a key of
    # another customer or one that would join a customer another key identifies.
    unlinked: tuple[Key, ...] = ()


_Outcome = tuple[Started, list[Key], bool]  # the contact, the visitor's keys now linked, registry told


@dataclass(eq=False, slots=True)
class _Visit:
    """One caller's startContact, waiting for its group."""

    channel: Channel
    keys: tuple[Key, ...]
    name: str | None
    may_merge: bool
    answer: asyncio.Future[_Outcome] | None = None


@dataclass(slots=True)
class _Plan:
    """Who a visit's customer is, from the keys found, and which keys to attach."""

    visit: _Visit
    found: dict[Key, str]
    attach: list[Key]
    customer_id: str
    created: bool
    unlinked: tuple[Key, ...]


class _GroupFailed(Exception):
    """The visit's group failed (perhaps for another visit): the visit is started on its own."""


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
        # Group commit: visits wait here while a group's transaction runs, and go together in the next.
        self._waiting: list[_Visit] = []
        self._group: asyncio.Task[None] | None = None

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
        started, mine, told = await self._start_visit(_Visit(channel, tuple(keys), name, may_merge))
        # The registry's profile of the customer changed when it was told facts; a contact alone
        # changes the hub's own data (the view's contacts), and the registry's cached profile stays.
        self._committed(self._registry_system if told else HUB_SYSTEM, [started.customer_id])
        self._known_customers[started.customer_id] = True
        for key in mine:  # committed: the visitor's next contact need not look them up
            self._known_keys[key] = started.customer_id
        if refused:
            started = replace(started, unlinked=(*refused, *started.unlinked))
        return started

    async def _start_visit(self, visit: _Visit) -> _Outcome:
        """Start the contact in the next group (group commit); alone when its group failed. Two first
        contacts with the same new key (in different groups or processes) race to create the customer:
        the loser retries alone and finds the winner's customer."""
        raced = 0
        try:
            return await self._in_group(visit)
        except IntegrityError:
            raced = 1
        except _GroupFailed:
            pass  # another visit's failure, or the group's: this one is tried on its own
        while True:
            try:
                return (await self._start_group([visit]))[0]
            except IntegrityError:
                raced += 1
                if raced >= 3:
                    raise

    async def _in_group(self, visit: _Visit) -> _Outcome:
        visit.answer = asyncio.get_running_loop().create_future()
        self._waiting.append(visit)
        self._next_group()
        return await visit.answer  # a caller that goes away cancels it: a group not yet run skips it

    def _next_group(self) -> None:
        """Start the waiting visits as one group, unless a group is running (it starts the next when it
        ends): alone when the hub is quiet, together under load. Visits that share a key wait for the
        next group, so that no two visits in a group create the same customer."""
        if self._group is not None or not self._waiting:
            return
        group: list[_Visit] = []
        later: list[_Visit] = []
        taken: set[Key] = set()
        for visit in self._waiting:
            if visit.answer is not None and visit.answer.done():
                continue  # its caller went away
            if len(group) < GROUP_MOST and taken.isdisjoint(visit.keys):
                group.append(visit)
                taken.update(visit.keys)
            else:
                later.append(visit)
        self._waiting = later
        if group:
            self._group = asyncio.create_task(self._run_group(group), name="start-contact-group")

    async def _run_group(self, group: list[_Visit]) -> None:
        try:
            outcomes = await self._start_group(group)
        except asyncio.CancelledError:
            for visit in group:
                _settle(visit, cancel=True)
            raise
        except Exception as exc:
            # One visit alone gets its own error; a group's failure (perhaps one visit's) sends each
            # visit to be started on its own, so the others are not failed by it.
            for visit in group:
                _settle(visit, error=exc if len(group) == 1 else _GroupFailed())
        else:
            for visit, outcome in zip(group, outcomes, strict=True):
                _settle(visit, outcome=outcome)
        finally:
            self._group = None
            self._next_group()

    async def _start_group(self, visits: Sequence[_Visit]) -> list[_Outcome]:
        """Identify (or create) each visit's customer and register its contact, all in one transaction:
        one statement per step for the group (the look-up, the new customers, the keys, the contacts,
        the events), the registry told per customer."""
        async with self._engine.begin() as tx:
            # A key once linked stays with its customer: only keys not seen linked before are looked up.
            known = self._known_keys
            unsure = list(dict.fromkeys(k for v in visits for k in v.keys if k not in known))
            looked = await self._graph.lookup(tx, unsure) if unsure else {}
            plans = [_plan(v, {k: known[k] if k in known else looked[k] for k in v.keys
                                if k in known or k in looked}) for v in visits]
            await self._graph.create_many(tx, [p.customer_id for p in plans if p.created])
            linked = await self._graph.link_many(
                tx, [(p.customer_id, k) for p in plans for k in p.attach if k not in p.found]
            )
            now = utcnow()
            outcomes: list[_Outcome] = []
            contacts: list[Contact] = []
            events: list[CloudEvent] = []
            mine_of: list[list[Key]] = []
            told_of: list[CustomerFacts | None] = []
            for p in plans:
                mine_new = [k for k in p.attach if k not in p.found and k in linked]
                if p.created and len(mine_new) < len(p.attach):
                    raise IntegrityError("first contact raced with another", None, Exception("key taken"))
                mine = [k for k in p.visit.keys if p.found.get(k) == p.customer_id or k in mine_new]
                mine_of.append(mine)
                # A returning visitor with nothing new: the registry knows it all.
                told = p.created or bool(mine_new) or bool(p.visit.name)
                told_of.append(_facts(p.customer_id, p.visit.name, mine, {}) if told else None)
            await self._tell_registry_many(tx, [f for f in told_of if f is not None])
            # Events no flow takes are not made at all (the outbox would drop them).
            routed = self._outbox.routed
            started_routed = routed(CONTACT_STARTED)
            created_routed, updated_routed = routed(CUSTOMER_CREATED), routed(CUSTOMER_UPDATED)
            for p, mine, facts in zip(plans, mine_of, told_of, strict=True):
                contact = Contact(
                    id=f"con_{uuid.uuid4().hex[:20]}",
                    customer_id=p.customer_id,
                    channel=p.visit.channel,
                    started_at=now,
                )
                contacts.append(contact)
                if started_routed:
                    events.append(make(
                        CONTACT_STARTED,
                        ContactStarted(
                            contactId=contact.id,
                            customerId=p.customer_id,
                            channel=contact.channel,
                            startedAt=contact.started_at,
                        ),
                        source=self._source,
                        subject=p.customer_id,
                        correlationid=contact.id,
                    ))
                if facts is not None and (created_routed if p.created else updated_routed):
                    events.append(self._customer_event(
                        CUSTOMER_CREATED if p.created else CUSTOMER_UPDATED, facts, contact.id
                    ))
                started = Started(contact, p.customer_id, p.created, p.unlinked)
                outcomes.append((started, mine, facts is not None))
            await insert_rows(tx, contacts_table, [
                {"id": c.id, "customer_id": c.customer_id, "channel": c.channel.value,
                 "started_at": c.started_at}
                for c in contacts
            ])
            if isinstance(self._registry, BatchContactRegistry):
                await self._registry.register_contacts(tx, contacts)
            else:
                for contact in contacts:
                    await self._registry.register_contact(tx, contact)
            await self._outbox.add(tx, events)
        return outcomes

    async def _tell_registry_many(self, tx: Tx, told: Sequence[CustomerFacts]) -> None:
        if len(told) > 1 and isinstance(self._registry, BatchContactRegistry):
            own_ids = await self._registry.upsert_customers(tx, told)
            for facts, own_id in zip(told, own_ids, strict=True):
                await self._link_own_id(tx, facts, own_id)
            return
        for facts in told:
            await self._tell_registry(tx, facts)

    async def _tell_registry(self, tx: Tx, facts: CustomerFacts) -> None:
        await self._link_own_id(tx, facts, await self._registry.upsert_customer(tx, facts))

    async def _link_own_id(self, tx: Tx, facts: CustomerFacts, own_id: str | None) -> None:
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
        if tx is not None:
            rows = await fetch_rows(tx, _CONTACT, {"id": contact_id})
        else:
            async with self._reader.connect() as conn:
                rows = await fetch_rows(conn, _CONTACT, {"id": contact_id})
        return _contact(rows[0]) if rows else None

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
        ranked = select(contacts_table, rank).where(any_of(contacts_table.c.customer_id, "ids")).subquery()
        rows = await conn.execute(
            select(ranked).where(ranked.c.rank <= RECENT_CONTACTS).order_by(ranked.c.started_at.desc()),
            {"ids": ids},
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


def _plan(visit: _Visit, found: dict[Key, str]) -> _Plan:
    """The visit's customer: the strongest key's. Keys given together are joined to it when the caller
    may merge; otherwise only the weakest key is attached (see ContactService.start)."""
    keys = visit.keys
    owners = set(found.values())
    joins = len(owners) > 1 or (len(owners) == 1 and len(found) < len(keys))
    attach = list(keys)
    if joins and not visit.may_merge:
        anchor = _weakest(keys)
        attach = [anchor]
        found = {anchor: found[anchor]} if anchor in found else {}
    customer_id = _strongest(found)
    created = customer_id is None
    return _Plan(
        visit=visit,
        found=found,
        attach=attach,
        customer_id=customer_id if customer_id is not None else new_customer_id(),
        created=created,
        unlinked=tuple(k for k in keys if k not in attach),
    )


def _settle(
    visit: _Visit,
    *,
    outcome: _Outcome | None = None,
    error: BaseException | None = None,
    cancel: bool = False,
) -> None:
    answer = visit.answer
    if answer is None or answer.done():  # its caller went away
        return
    if cancel:
        answer.cancel()
    elif error is not None:
        answer.set_exception(error)
    else:
        assert outcome is not None
        answer.set_result(outcome)


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
