"""Harnesses for the built-in adapters: their store is a real PostgreSQL database, reached through a
TcpProxy so the kit can make it slow and dead. The tables come from the adapter's own migrations."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config import SHIPPED_MAPPINGS
from hub.events import CONTACT_EVENT_TYPES, CloudEvent, contact_event_data
from hub.model import Channel, ContactEvent, ContactEventType, PropositionResponse
from hub.ports import utcnow
from hub.ports.proxy import TcpProxy
from hub.ports.testing import ProxiedHarness
from hub.registry import adapter_factories, component_of
from hub.store.db import create_engine, migrate
from hub_adapters.cm.policy import CustomerState
from hub_adapters.cm.tables import cm_profiles
from hub_adapters.crm.tables import crm_customers


class StoreHarness(ProxiedHarness):
    """A built-in system on the hub's store. The adapter gets `engine` (through the proxy); the
    harness seeds and counts effects on `direct`, which no fault reaches."""

    timeout = 0.5

    def __init__(self, direct: AsyncEngine, proxy: TcpProxy, proxied: AsyncEngine, password: str):
        self.direct = direct
        self.proxy = proxy
        self.engine = proxied
        # Trust auth ignores it, but the adapter's engine carries it: it must never be shown.
        self.secrets = (password,)
        self._statements = 0
        event.listen(proxied.sync_engine, "before_cursor_execute", self._count)

    def _count(self, *_: Any) -> None:
        self._statements += 1

    def backend_calls(self) -> int:
        return self._statements


H = TypeVar("H", bound=StoreHarness)


@contextlib.asynccontextmanager
async def store_harness(kind: type[H], postgres_url: str) -> AsyncIterator[H]:
    password = f"kit-pw-{uuid.uuid4().hex}"
    url = make_url(postgres_url).set(password=password)
    direct = create_engine(url.render_as_string(hide_password=False))
    component = component_of(kind.entry_point, adapter_factories()[kind.entry_point].load())
    await migrate(direct, [component] if component else [])
    proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = create_engine(proxy.url(url.render_as_string(hide_password=False)))
    try:
        # Connect once before counting: the dialect's first-connect queries are not the adapter's.
        async with proxied.connect() as conn:
            await conn.execute(text("SELECT 1"))
        yield kind(direct, proxy, proxied, password)
    finally:
        proxy.restore()
        proxy.slow(0)
        await proxied.dispose()
        await proxy.close()
        await direct.dispose()


class CRMHarness(StoreHarness):
    entry_point = "builtin-crm"
    system = "crm"
    invalid_configs = (({"offers": "cm/offers.yaml"}, "offers"),)  # the CRM takes no settings

    async def seed(self, keys: Sequence[str]) -> None:
        now = utcnow()
        async with self.direct.begin() as conn:
            await conn.execute(crm_customers.insert(), [
                {"id": k, "name": f"Kit {k}", "emails": [f"{k}@example.com"], "phones": [],
                 "attributes": {"tier": "gold"}, "created_at": now, "updated_at": now}
                for k in keys
            ])

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._sales: dict[str, tuple[str, str]] = {}  # event id -> (customer, offer)

    async def sample_event(self) -> CloudEvent:
        """An accepted offer: a closed sale the CRM records as a product of the customer."""
        customer = self.new_key()
        await self.seed([customer])
        offer = f"kit-offer-{uuid.uuid4().hex[:8]}"
        accepted = ContactEvent(id=str(uuid.uuid4()), type=ContactEventType.PROPOSITION_RESPONSE,
                                customer_id=customer, contact_id="kit-contact", channel=Channel.SHOP,
                                occurred_at=utcnow(), offer_id=offer, response=PropositionResponse.ACCEPTED)
        self._sales[accepted.id] = (customer, offer)
        return CloudEvent(type=CONTACT_EVENT_TYPES[accepted.type], source="urn:kit", id=accepted.id,
                          subject=customer, data=contact_event_data(accepted).to_data())

    async def effects(self, event_id: str) -> int:
        """How often the sale's offer is among the customer's products."""
        customer, offer = self._sales[event_id]
        async with self.direct.connect() as conn:
            products = (await conn.execute(select(crm_customers.c.products).where(
                crm_customers.c.id == customer))).scalar_one_or_none()
        return list(products or []).count(offer)


class CMHarness(StoreHarness):
    entry_point = "builtin-cm"
    system = "cm"
    config = {
        "offers": str(SHIPPED_MAPPINGS / "cm/offers.yaml"),
        "segments": str(SHIPPED_MAPPINGS / "cm/segments.yaml"),
        "learning_ttl_seconds": 0,
    }
    invalid_configs = (
        ({**config, "learning_ttl_seconds": -1}, "learning_ttl_seconds"),
        ({**config, "colour": "red"}, "colour"),
    )
    OFFER = "savings-plus"

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._customers: dict[str, str] = {}  # event id -> the customer it is about

    async def seed(self, keys: Sequence[str]) -> None:
        async with self.direct.begin() as conn:
            await conn.execute(cm_profiles.insert(), [
                {"customer_id": k, "state": CustomerState(attributes={"tier": "gold"}).to_dict(),
                 "version": 0, "updated_at": utcnow()}
                for k in keys
            ])

    async def sample_event(self) -> CloudEvent:
        shown = ContactEvent(id=str(uuid.uuid4()), type=ContactEventType.PROPOSITION_SHOWN,
                             customer_id=self.new_key(), contact_id="kit-contact", channel=Channel.WEBSITE,
                             occurred_at=utcnow(), offer_id=self.OFFER)
        self._customers[shown.id] = shown.customer_id
        return CloudEvent(type=CONTACT_EVENT_TYPES[shown.type], source="urn:kit", id=shown.id,
                          subject=shown.customer_id, data=contact_event_data(shown).to_data())

    async def effects(self, event_id: str) -> int:
        """How often the offer was counted as shown to the event's customer."""
        async with self.direct.connect() as conn:
            state = (await conn.execute(select(cm_profiles.c.state).where(
                cm_profiles.c.customer_id == self._customers[event_id]))).scalar_one_or_none()
        offer = CustomerState.from_dict(state).offers.get(self.OFFER) if state else None
        return offer.shown if offer else 0
