"""Use case: a customer's consent per purpose (marketing, profiling) and channel.

Consents are master data: the consent registry (role `consent_registry`, the CRM) keeps them, so a
consent recorded in the CRM and one given through the hub are the same thing. The hub writes through the
registry (GraphQL `setConsent`; the unsubscribe link `/u/<code>`) and, in the same transaction, a
`customer.consent` event for the systems that act on it: CM ranks NBAs and plans leads by it, LM sends
by it (the shipped flows `customers-to-cm` and `consents-to-lm`). Nothing recorded means allowed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.core.errors import NotFound
from hub.events import CUSTOMER_CONSENT, ConsentData, make, utcnow
from hub.messaging.outbox import Outbox
from hub.model import Channel
from hub.model.privacy import Consent, ConsentPurpose
from hub.ports import ConsentRegistry
from hub.store.db import reading
from hub.store.tables import customers

log = logging.getLogger(__name__)

Tx = AsyncConnection
Committed = Callable[[str, Sequence[str]], None]


class ConsentService:
    def __init__(
        self,
        engine: AsyncEngine,
        registry_system: str,
        registry: ConsentRegistry,
        outbox: Outbox,
        source: str,
        committed: Committed,
    ):
        self._engine = engine
        self._reader = reading(engine)
        self.system = registry_system
        self._registry = registry
        self._outbox = outbox
        self._source = source
        self._committed = committed

    async def set(
        self, customer_id: str, purpose: ConsentPurpose, channel: Channel | None, granted: bool
    ) -> bool:
        """Record a consent given through the hub (GraphQL); NotFound for an unknown customer. True when
        it changed what the registry holds."""
        cid = customer_id.strip()
        if not 0 < len(cid) <= 40:
            raise NotFound(f"no customer with id {cid[:40]!r}", customerId=cid[:40])
        async with self._engine.begin() as tx:
            found = await tx.execute(select(customers.c.id).where(customers.c.id == cid))
            if found.first() is None:
                raise NotFound(f"no customer with id {cid!r}", customerId=cid)
            changed = await self.record(tx, cid, Consent(purpose, channel, granted, utcnow(), "api"))
        if changed:
            self.committed(cid)
        return changed

    async def record(self, tx: Tx, customer_id: str, consent: Consent) -> bool:
        """In the caller's transaction: the registry records it, and a `customer.consent` event tells
        the systems that act on consent (only when it changed anything)."""
        changed = await self._registry.set_consent(tx, customer_id, consent)
        if changed:
            await self._outbox.add(
                tx,
                [
                    make(
                        CUSTOMER_CONSENT,
                        ConsentData(
                            customerId=customer_id,
                            purpose=consent.purpose,
                            channel=consent.channel,
                            granted=consent.granted,
                            at=consent.at,
                            source=consent.source,
                        ),
                        source=self._source,
                        subject=customer_id,
                    )
                ],
            )
            log.info(  # who it is about is not logged
                "consent: %s in %s %s (%s)",
                consent.purpose.value,
                consent.channel.value if consent.channel else "every channel",
                "granted" if consent.granted else "withdrawn",
                consent.source,
            )
        return changed

    def committed(self, customer_id: str) -> None:
        """After a commit that recorded a consent: the registry's cached reads go, the relay wakes."""
        self._committed(self.system, [customer_id])

    async def of(self, customer_ids: Sequence[str]) -> list[list[Consent]]:
        """Each customer's recorded consents, in the order asked."""
        found = await self._registry.consents([c for c in dict.fromkeys(customer_ids) if 0 < len(c) <= 40])
        return [list(found.get(cid, ())) for cid in customer_ids]
