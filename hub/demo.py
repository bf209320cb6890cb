"""Demo data for a newcomer: a handful of customers (offers and segments ship in mappings/cm)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub.config.loader import load_located, validate
from hub.core.identity import keys_from
from hub.runtime import Hub

log = logging.getLogger(__name__)


class DemoCustomer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    email: str | None = None
    phone: str | None = None
    customer_number: str | None = None
    cookie_id: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class DemoData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customers: list[DemoCustomer]


async def load_demo(hub: Hub, progress: Callable[[int, int | None], None] | None = None) -> int:
    """Create the demo customers that do not exist yet (idempotent); returns how many were created.
    `progress` is told how many customers are done so far, of how many."""
    located = load_located(hub.settings.mappings_dir / "demo" / "customers.yaml")
    demo = validate(located, DemoData)
    created = 0
    for done, c in enumerate(demo.customers, start=1):
        keys = keys_from(
            email=c.email,
            phone=c.phone,
            customer_id=c.customer_number,
            cookie_id=c.cookie_id,
            region=hub.phone_region,
        )
        if await hub.contacts.import_customer(keys, c.name, c.attributes):
            created += 1
        if progress is not None:
            progress(done, len(demo.customers))
    log.info("demo data: %d customers created, %d already there", created, len(demo.customers) - created)
    return created
