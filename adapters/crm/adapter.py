"""The built-in CRM: customer master data and the contact registry, in the hub's store."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from hub.core.model import Channel, Contact
from hub.events import utcnow
from hub.ports import AdapterContext, Health, Profile, Tx

from .tables import crm_contacts, crm_customers

# How many recent contacts the profile carries per customer.
RECENT_CONTACTS = 20


class BuiltinCRM:
    """Ports: ProfileSource, ContactRegistry."""

    def __init__(self, ctx: AdapterContext):
        self.system = ctx.system
        self._engine = ctx.engine

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def check(self) -> Health:
        async with self._engine.connect() as conn:
            await conn.execute(select(crm_customers.c.id).limit(1))
        return Health(True, "store reachable")

    # ProfileSource
    async def fetch(self, customer_ids: Sequence[str]) -> dict[str, Profile]:
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return {}
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(crm_customers).where(crm_customers.c.id.in_(ids)))).all()
            contact_rows = (
                await conn.execute(
                    select(crm_contacts)
                    .where(crm_contacts.c.customer_id.in_(ids))
                    .order_by(crm_contacts.c.started_at.desc())
                )
            ).all()
        contacts: dict[str, list[Contact]] = defaultdict(list)
        for r in contact_rows:
            if len(contacts[r.customer_id]) < RECENT_CONTACTS:
                contacts[r.customer_id].append(_contact(r))
        return {
            r.id: {
                "name": r.name,
                "emails": list(r.emails),
                "phones": list(r.phones),
                "attributes": dict(r.attributes),
                "contacts": contacts.get(r.id, []),
            }
            for r in rows
        }

    # ContactRegistry
    async def upsert_customer(
        self,
        tx: Tx,
        customer_id: str,
        name: str | None,
        emails: Sequence[str],
        phones: Sequence[str],
        attributes: dict[str, Any] | None = None,
    ) -> None:
        now = utcnow()
        row = (
            await tx.execute(select(crm_customers).where(crm_customers.c.id == customer_id).with_for_update())
        ).first()
        if row is None:
            await tx.execute(
                crm_customers.insert().values(
                    id=customer_id,
                    name=name,
                    emails=list(dict.fromkeys(emails)),
                    phones=list(dict.fromkeys(phones)),
                    attributes=attributes or {},
                    created_at=now,
                    updated_at=now,
                )
            )
            return
        await tx.execute(
            crm_customers.update()
            .where(crm_customers.c.id == customer_id)
            .values(
                name=name or row.name,
                emails=list(dict.fromkeys([*row.emails, *emails])),
                phones=list(dict.fromkeys([*row.phones, *phones])),
                attributes={**row.attributes, **(attributes or {})},
                updated_at=now,
            )
        )

    async def register_contact(self, tx: Tx, contact: Contact) -> None:
        await tx.execute(
            crm_contacts.insert().values(
                id=contact.id,
                customer_id=contact.customer_id,
                channel=contact.channel.value,
                started_at=contact.started_at,
            )
        )

    async def end_contact(self, tx: Tx, contact_id: str, outcome: str | None) -> Contact | None:
        await tx.execute(
            crm_contacts.update()
            .where(crm_contacts.c.id == contact_id, crm_contacts.c.ended_at.is_(None))
            .values(ended_at=utcnow(), outcome=outcome)
        )
        return await self.get_contact(tx, contact_id)

    async def get_contact(self, tx: Tx | None, contact_id: str) -> Contact | None:
        stmt = select(crm_contacts).where(crm_contacts.c.id == contact_id)
        if tx is not None:
            row = (await tx.execute(stmt)).first()
        else:
            async with self._engine.connect() as conn:
                row = (await conn.execute(stmt)).first()
        return _contact(row) if row else None


def _contact(r: Any) -> Contact:
    return Contact(
        id=r.id,
        customer_id=r.customer_id,
        channel=Channel(r.channel),
        started_at=r.started_at,
        ended_at=r.ended_at,
        outcome=r.outcome,
    )
