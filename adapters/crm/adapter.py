"""The built-in CRM: customer master data, and its log of the contacts the hub registers with it.

It shares the hub's golden ids, so the mapping reads it by `key: id`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from hub.ports import (
    AdapterConfig,
    AdapterContext,
    Contact,
    ContactRegistry,
    CustomerFacts,
    Health,
    ProfileSource,
    Record,
    Tx,
    dialect_insert,
    utcnow,
)

from .tables import MIGRATIONS, crm_contacts, crm_customers, metadata


class CRMConfig(AdapterConfig):
    """The built-in CRM takes no settings: a `config:` key under it is a mistake, and said so."""


class BuiltinCRM:
    """Entry point `builtin-crm`."""

    ports: ClassVar[tuple[type, ...]] = (ProfileSource, ContactRegistry)
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
        try:
            async with self._reader.connect() as conn:
                await conn.execute(select(crm_customers.c.id).limit(1))
        except (SQLAlchemyError, OSError) as exc:
            # Only the kind of failure: a driver's message may carry the DSN.
            return Health(False, f"CRM store unavailable ({type(exc).__name__})")
        return Health(True, "store reachable")

    # ProfileSource
    async def fetch(self, keys: Sequence[str]) -> Mapping[str, Record]:
        ids = list(dict.fromkeys(keys))
        if not ids:
            return {}
        async with self._reader.connect() as conn:
            rows = (await conn.execute(select(crm_customers).where(crm_customers.c.id.in_(ids)))).all()
        return {
            r.id: {
                "name": r.name,
                "emails": list(r.emails),
                "phones": list(r.phones),
                "attributes": dict(r.attributes),
                "updatedAt": r.updated_at.isoformat(),
            }
            for r in rows
        }

    # ContactRegistry
    async def upsert_customer(self, tx: Tx, facts: CustomerFacts) -> str | None:
        now = utcnow()
        # Most upserts are new customers: one statement for them; an existing one is read after.
        inserted = await tx.execute(
            dialect_insert(tx, crm_customers)
            .values(
                id=facts.customer_id,
                name=facts.name,
                emails=list(dict.fromkeys(facts.emails)),
                phones=list(dict.fromkeys(facts.phones)),
                attributes=dict(facts.attributes),
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[crm_customers.c.id])
        )
        if inserted.rowcount == 1:
            return None
        row = (await tx.execute(select(crm_customers).where(crm_customers.c.id == facts.customer_id))).one()
        if _merged(row, facts) == _current(row):
            return None  # a returning visitor with nothing new: no write, and `updatedAt` stays true
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
        return None  # the built-in CRM shares the hub's golden ids: no key of its own to link

    async def register_contact(self, tx: Tx, contact: Contact) -> None:
        await tx.execute(
            crm_contacts.insert().values(
                id=contact.id,
                customer_id=contact.customer_id,
                channel=contact.channel.value,
                started_at=contact.started_at,
            )
        )

    async def end_contact(self, tx: Tx, contact: Contact) -> None:
        await tx.execute(
            crm_contacts.update()
            .where(crm_contacts.c.id == contact.id)
            .values(ended_at=contact.ended_at, outcome=contact.outcome)
        )


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
