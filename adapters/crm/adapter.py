"""The built-in CRM: customer master data, its log of the contacts the hub registers with it, customer
requests with their status history, and the products customers hold.

It shares the hub's golden ids, so the mapping reads it by `key: id`. A sale closes when a customer
accepts an offer (`contact.response` ACCEPTED, through a flow to the CRM) or when a quote for an offer is
completed: the offer becomes one of the customer's `products` in the view.

It keeps customers' consents per purpose and channel (ConsentRegistry: the hub writes them in its
transaction, with a `customer.consent` event), and erases and exports a customer's data (PrivacyHandler:
master data, consents, the contacts it was told about, requests with their history)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import delete, func, select, update

from hub.ports import (
    AdapterConfig,
    AdapterContext,
    Channel,
    CloudEvent,
    Consent,
    ConsentPurpose,
    ConsentRegistry,
    Contact,
    ContactRegistry,
    CustomerFacts,
    CustomerRequest,
    EventConsumer,
    Health,
    MalformedEvent,
    PerDialect,
    Period,
    PermanentError,
    PrivacyHandler,
    PrivacySubject,
    ProfileSource,
    PropositionResponse,
    Record,
    RequestCount,
    RequestKind,
    RequestRegistry,
    RequestStatus,
    StatusChange,
    Tx,
    any_of,
    dialect_insert,
    fetch_rows,
    insert_rows,
    read_contact_event,
    store_health,
    utcnow,
    within,
)

from .tables import (
    MIGRATIONS,
    crm_consents,
    crm_contacts,
    crm_customers,
    crm_request_history,
    crm_requests,
    metadata,
)

ANY_CHANNEL = "*"  # a consent for every channel

# The statements of every startContact, built once (SQLAlchemy spends more CPU building a statement
# than running it); the values come as parameters.
_CUSTOMERS = select(crm_customers).where(any_of(crm_customers.c.id, "ids"))
_NEW_CUSTOMER = PerDialect(
    lambda insert: insert(crm_customers).on_conflict_do_nothing(index_elements=[crm_customers.c.id])
)
_NEW_CONTACT = crm_contacts.insert()

SALE_EVENT = "contact.response"  # through a flow to the CRM: an ACCEPTED response closes a sale


class CRMConfig(AdapterConfig):
    """The built-in CRM takes no settings: a `config:` key under it is a mistake, and said so."""


class BuiltinCRM:
    """Entry point `builtin-crm`."""

    # Also RequestReports (request_counts) and BatchContactRegistry (upsert_customers,
    # register_contacts): not roles' ports, so not in `ports`.
    ports: ClassVar[tuple[type, ...]] = (
        ProfileSource, ContactRegistry, RequestRegistry, EventConsumer, PrivacyHandler, ConsentRegistry
    )
    Config = CRMConfig
    metadata = metadata
    migrations = MIGRATIONS

    def __init__(self, ctx: AdapterContext):
        self.system = ctx.system
        self._reader = ctx.reader  # it only reads on its own: writes come in the hub's transaction

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def check(self) -> Health:
        return await store_health(self._reader, "CRM", crm_customers)

    # ProfileSource
    async def fetch(self, keys: Sequence[str]) -> Mapping[str, Record]:
        ids = list(dict.fromkeys(keys))
        if not ids:
            return {}
        async with self._reader.connect() as conn:
            rows = await fetch_rows(conn, _CUSTOMERS, {"ids": ids})
        return {
            r.id: {
                "name": r.name,
                "emails": list(r.emails),
                "phones": list(r.phones),
                "attributes": dict(r.attributes),
                "products": list(r.products or []),
                "updatedAt": r.updated_at.isoformat(),
            }
            for r in rows
        }

    # ContactRegistry
    async def upsert_customer(self, tx: Tx, facts: CustomerFacts) -> str | None:
        now = utcnow()
        # Most upserts are new customers: one statement for them; an existing one is read after.
        inserted = await tx.execute(_NEW_CUSTOMER(tx), _customer_row(facts, now))
        if inserted.rowcount != 1:
            await self._merge(tx, facts, now)
        return None  # the built-in CRM shares the hub's golden ids: no key of its own to link

    async def _merge(self, tx: Tx, facts: CustomerFacts, now: datetime) -> None:
        """An existing customer: what the facts add, written only when they add something."""
        row = (await tx.execute(select(crm_customers).where(crm_customers.c.id == facts.customer_id))).one()
        if _merged(row, facts) == _current(row):
            return  # a returning visitor with nothing new: no write, and `updatedAt` stays true
        row = (
            await tx.execute(
                select(crm_customers).where(crm_customers.c.id == facts.customer_id).with_for_update()
            )
        ).one()
        name, emails, phones, attributes = _merged(row, facts)
        await tx.execute(
            crm_customers.update()
            .where(crm_customers.c.id == facts.customer_id)
            .values(name=name, emails=emails, phones=phones, attributes=attributes, updated_at=now)
        )

    # BatchContactRegistry: the contacts the hub starts together, in one statement per step
    async def upsert_customers(self, tx: Tx, facts: Sequence[CustomerFacts]) -> list[str | None]:
        now = utcnow()
        # New customers (most of them) in one statement; one that exists already is read and merged.
        ordered = sorted(facts, key=lambda f: f.customer_id)  # one lock order for everyone
        rows = [_customer_row(f, now) for f in ordered]
        made = await insert_rows(tx, crm_customers, rows, conflict=("id",), returning=("id",))
        inserted = {r.id for r in made}
        for f in facts:
            if f.customer_id not in inserted:
                await self._merge(tx, f, now)
        return [None for _ in facts]  # the built-in CRM shares the hub's golden ids

    async def register_contacts(self, tx: Tx, contacts: Sequence[Contact]) -> None:
        if contacts:
            await insert_rows(tx, crm_contacts, [_contact_row(c) for c in contacts])

    async def register_contact(self, tx: Tx, contact: Contact) -> None:
        await tx.execute(_NEW_CONTACT, _contact_row(contact))

    async def end_contact(self, tx: Tx, contact: Contact) -> None:
        await tx.execute(
            crm_contacts.update()
            .where(crm_contacts.c.id == contact.id)
            .values(ended_at=contact.ended_at, outcome=contact.outcome)
        )

    # RequestRegistry
    async def add_request(self, tx: Tx, request: CustomerRequest) -> None:
        now = utcnow()
        await tx.execute(
            crm_requests.insert().values(
                id=request.id,
                customer_id=request.customer_id,
                contact_id=request.contact_id,
                kind=request.kind.value,
                subject=request.subject,
                details=request.details,
                offer_id=request.offer_id,
                status=request.status.value,
                created_at=request.created_at,
                updated_at=now,
            )
        )
        if request.history:
            await tx.execute(
                crm_request_history.insert(),
                [_step(request.id, i, change) for i, change in enumerate(request.history)],
            )
        sold = _sold(request.kind, request.status, request.offer_id)
        if sold:  # completed straight through
            await self._hold(tx, request.customer_id, sold)

    async def add_status(self, tx: Tx, request_id: str, change: StatusChange) -> None:
        steps = (
            await tx.execute(
                select(crm_request_history.c.step)
                .where(crm_request_history.c.request_id == request_id)
                .order_by(crm_request_history.c.step.desc())
                .limit(1)
            )
        ).scalar()
        await tx.execute(crm_request_history.insert().values(**_step(request_id, (steps or 0) + 1, change)))
        done = await tx.execute(
            update(crm_requests)
            .where(crm_requests.c.id == request_id)
            .values(status=change.status.value, updated_at=utcnow())
            .returning(crm_requests.c.customer_id, crm_requests.c.kind, crm_requests.c.offer_id)
        )
        row = done.first()
        sold = _sold(RequestKind(row.kind), change.status, row.offer_id) if row else None
        if row and sold:
            await self._hold(tx, row.customer_id, sold)

    # EventConsumer: accepted offers are sales
    async def consume(self, tx: Tx, event: CloudEvent) -> set[str]:
        if event.type != SALE_EVENT:
            return set()
        try:
            contact = read_contact_event(event)
        except MalformedEvent as exc:
            raise PermanentError(str(exc)) from exc
        if contact.response is not PropositionResponse.ACCEPTED or not contact.offer_id:
            return set()
        return await self._hold(tx, contact.customer_id, contact.offer_id)

    async def _hold(self, tx: Tx, customer_id: str, offer_id: str) -> set[str]:
        """The customer holds the offer as a product (once: a redelivery or a second sale adds nothing)."""
        row = (
            await tx.execute(
                select(crm_customers.c.products).where(crm_customers.c.id == customer_id).with_for_update()
            )
        ).first()
        held = list(row.products or []) if row else None
        if held is None or offer_id in held:
            return set()
        await tx.execute(
            update(crm_customers)
            .where(crm_customers.c.id == customer_id)
            .values(products=[*held, offer_id], updated_at=utcnow())
        )
        return {customer_id}

    # ConsentRegistry
    async def set_consent(self, tx: Tx, customer_id: str, consent: Consent) -> bool:
        key = (customer_id, consent.purpose.value, consent.channel.value if consent.channel else ANY_CHANNEL)
        where = (crm_consents.c.customer_id == key[0], crm_consents.c.purpose == key[1],
                 crm_consents.c.channel == key[2])
        row = (await tx.execute(select(crm_consents).where(*where).with_for_update())).first()
        if row is not None and (row.at > consent.at or (row.granted, row.source) == (consent.granted,
                                                                                       consent.source)):
            return False  # a newer statement is kept, or this one says the same again
        values = {"granted": consent.granted, "at": consent.at, "source": consent.source}
        if row is None:
            await tx.execute(
                dialect_insert(tx, crm_consents)
                .values(customer_id=key[0], purpose=key[1], channel=key[2], **values)
                .on_conflict_do_update(index_elements=list(crm_consents.primary_key.columns), set_=values)
            )
        else:
            await tx.execute(update(crm_consents).where(*where).values(**values))
        return True

    async def consents(self, customer_ids: Sequence[str]) -> Mapping[str, Sequence[Consent]]:
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return {}
        async with self._reader.connect() as conn:
            rows = (await conn.execute(
                select(crm_consents)
                .where(crm_consents.c.customer_id.in_(ids))
                .order_by(crm_consents.c.customer_id, crm_consents.c.purpose, crm_consents.c.channel)
            )).all()
        out: dict[str, list[Consent]] = defaultdict(list)
        for r in rows:
            out[r.customer_id].append(_consent(r))
        return out

    # PrivacyHandler: the customer's master data, consents, the contacts it was told about, the requests
    async def erase(self, tx: Tx, subject: PrivacySubject) -> str:
        cid = subject.customer_id
        await tx.execute(delete(crm_consents).where(crm_consents.c.customer_id == cid))
        mine = select(crm_requests.c.id).where(crm_requests.c.customer_id == cid).scalar_subquery()
        await tx.execute(delete(crm_request_history).where(crm_request_history.c.request_id.in_(mine)))
        requests = await tx.execute(delete(crm_requests).where(crm_requests.c.customer_id == cid))
        contacts = await tx.execute(delete(crm_contacts).where(crm_contacts.c.customer_id == cid))
        customer = await tx.execute(delete(crm_customers).where(crm_customers.c.id == cid))
        return (
            f"{customer.rowcount or 0} customer record, {contacts.rowcount or 0} contacts, "
            f"{requests.rowcount or 0} requests removed"
        )

    async def export(self, tx: Tx, subject: PrivacySubject) -> dict[str, Any]:
        cid = subject.customer_id
        row = (await tx.execute(select(crm_customers).where(crm_customers.c.id == cid))).first()
        contacts = (
            await tx.execute(
                select(crm_contacts)
                .where(crm_contacts.c.customer_id == cid)
                .order_by(crm_contacts.c.started_at)
            )
        ).all()
        requests = (
            await tx.execute(
                select(crm_requests)
                .where(crm_requests.c.customer_id == cid)
                .order_by(crm_requests.c.created_at)
            )
        ).all()
        found = await _with_history(tx, requests)
        consents = (await tx.execute(
            select(crm_consents).where(crm_consents.c.customer_id == cid).order_by(
                crm_consents.c.purpose, crm_consents.c.channel)
        )).all()
        return {
            "consents": [
                {"purpose": c.purpose, "channel": None if c.channel == ANY_CHANNEL else c.channel,
                 "granted": c.granted, "at": c.at, "source": c.source}
                for c in consents
            ],
            "customer": None if row is None else {
                "name": row.name,
                "emails": list(row.emails),
                "phones": list(row.phones),
                "attributes": dict(row.attributes),
                "products": list(row.products or []),
                "createdAt": row.created_at,
                "updatedAt": row.updated_at,
            },
            "contacts": [
                {"id": c.id, "channel": c.channel, "startedAt": c.started_at, "endedAt": c.ended_at,
                 "outcome": c.outcome}
                for c in contacts
            ],
            "requests": [
                {
                    "id": r.id, "kind": r.kind.value, "subject": r.subject, "details": r.details,
                    "offerId": r.offer_id, "status": r.status.value, "createdAt": r.created_at,
                    "history": [
                        {"status": h.status.value, "at": h.at, "by": h.by, "note": h.note} for h in r.history
                    ],
                }
                for r in found
            ],
        }

    async def locked_request(self, tx: Tx, request_id: str) -> CustomerRequest | None:
        row = (
            await tx.execute(select(crm_requests).where(crm_requests.c.id == request_id).with_for_update())
        ).first()
        if row is None:
            return None
        return (await _with_history(tx, [row]))[0]

    async def requests(self, request_ids: Sequence[str]) -> Mapping[str, CustomerRequest]:
        ids = list(dict.fromkeys(request_ids))
        if not ids:
            return {}
        async with self._reader.connect() as conn:
            rows = (await conn.execute(select(crm_requests).where(crm_requests.c.id.in_(ids)))).all()
            return {r.id: r for r in await _with_history(conn, rows)}

    async def requests_of(self, customer_ids: Sequence[str]) -> Mapping[str, Sequence[CustomerRequest]]:
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return {}
        async with self._reader.connect() as conn:
            rows = (
                await conn.execute(
                    select(crm_requests)
                    .where(crm_requests.c.customer_id.in_(ids))
                    .order_by(crm_requests.c.created_at.desc(), crm_requests.c.id)
                )
            ).all()
            found = await _with_history(conn, rows)
        out: dict[str, list[CustomerRequest]] = defaultdict(list)
        for request in found:
            out[request.customer_id].append(request)
        return out

    # --- RequestReports --------------------------------------------------------------------------------

    async def request_counts(self, period: Period) -> list[RequestCount]:
        """Requests made in the period, by kind and current status."""
        r = crm_requests.c
        query = (
            select(r.kind, r.status, func.count().label("n"))
            .group_by(r.kind, r.status)
            .order_by(r.kind, r.status)
        )
        query = within(query, r.created_at, period)
        async with self._reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [RequestCount(RequestKind(row.kind), RequestStatus(row.status), int(row.n)) for row in rows]


def _consent(r: Any) -> Consent:
    return Consent(
        purpose=ConsentPurpose(r.purpose),
        channel=None if r.channel == ANY_CHANNEL else Channel(r.channel),
        granted=bool(r.granted),
        at=r.at,
        source=r.source,
    )


def _sold(kind: RequestKind, status: RequestStatus, offer_id: str | None) -> str | None:
    """The offer a request sells: a completed quote for an offer is a closed sale."""
    return offer_id if kind is RequestKind.QUOTE and status is RequestStatus.COMPLETED else None


def _step(request_id: str, step: int, change: StatusChange) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "step": step,
        "status": change.status.value,
        "at": change.at,
        "by": change.by,
        "note": change.note,
    }


async def _with_history(conn: Tx, rows: Sequence[Any]) -> list[CustomerRequest]:
    """The requests of `rows`, in their order, each with its history (one read for all)."""
    if not rows:
        return []
    history: dict[str, list[StatusChange]] = defaultdict(list)
    steps = await conn.execute(
        select(crm_request_history)
        .where(crm_request_history.c.request_id.in_([r.id for r in rows]))
        .order_by(crm_request_history.c.request_id, crm_request_history.c.step)
    )
    for s in steps:
        history[s.request_id].append(StatusChange(RequestStatus(s.status), s.at, s.by, s.note))
    return [
        CustomerRequest(
            id=r.id,
            customer_id=r.customer_id,
            contact_id=r.contact_id,
            kind=RequestKind(r.kind),
            subject=r.subject,
            details=r.details,
            status=RequestStatus(r.status),
            created_at=r.created_at,
            history=tuple(history[r.id]),
            offer_id=r.offer_id,
        )
        for r in rows
    ]


def _current(row: Any) -> tuple[Any, list[str], list[str], dict[str, Any]]:
    return row.name, list(row.emails), list(row.phones), dict(row.attributes)


def _merged(row: Any, facts: CustomerFacts) -> tuple[Any, list[str], list[str], dict[str, Any]]:
    """The master data after `facts`: a new name wins, keys and attributes are added."""
    return (
        facts.name or row.name,
        list(dict.fromkeys([*row.emails, *facts.emails])),
        list(dict.fromkeys([*row.phones, *facts.phones])),
        {**row.attributes, **facts.attributes},
    )


def _contact_row(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "customer_id": contact.customer_id,
        "channel": contact.channel.value,
        "started_at": contact.started_at,
    }


def _customer_row(facts: CustomerFacts, now: datetime) -> dict[str, Any]:
    return {
        "id": facts.customer_id,
        "name": facts.name,
        "emails": list(dict.fromkeys(facts.emails)),
        "phones": list(dict.fromkeys(facts.phones)),
        "attributes": dict(facts.attributes),
        "products": [],
        "created_at": now,
        "updated_at": now,
    }
