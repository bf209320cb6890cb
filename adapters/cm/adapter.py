"""BuiltinCM: the built-in campaign-management system on the hub's own store.

Ports: ProfileSource (segments, offerHistory, attributes), DecisionEngine (offers, decide) and
EventConsumer (contact events, customer.created / customer.updated).

Concurrency: `consume` runs in the caller's transaction and never commits. A profile row is written
with optimistic concurrency (UPDATE ... WHERE version = :old; INSERT ... ON CONFLICT DO NOTHING when
absent); a lost race raises `ConcurrentUpdate`, so the bus rolls back and retries the event. The
learning counters are incremented atomically by an upsert (SQLite and PostgreSQL).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.bus.base import PermanentError
from hub.core.model import (
    CUSTOMER_CREATED,
    EVENT_KINDS,
    Channel,
    ContactEvent,
    ContactEventType,
    NextBestAction,
    Offer,
    PropositionResponse,
)
from hub.events import CloudEvent, utcnow
from hub.ports import AdapterContext, Health, Profile, Tx
from hub.store.db import dialect_insert
from hub_adapters.cm import policy
from hub_adapters.cm.catalog import Catalog, load_catalog
from hub_adapters.cm.policy import CustomerState
from hub_adapters.cm.tables import cm_offer_learning, cm_profiles

CUSTOMER_UPDATED = "customer.updated"
CUSTOMER_EVENTS = frozenset({CUSTOMER_CREATED, CUSTOMER_UPDATED})
MAX_CUSTOMER_ID = 40
MAX_OFFER_ID = 80


class ConcurrentUpdate(RuntimeError):
    """Another process changed the customer's CM profile first: roll back and retry the event."""


class CMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    offers: str = "cm/offers.yaml"  # relative to settings.mappings_dir
    segments: str = "cm/segments.yaml"
    learning_ttl_seconds: float = Field(1.0, ge=0)


class BuiltinCM:
    """The built-in CM adapter (entry point `builtin-cm`)."""

    def __init__(self, ctx: AdapterContext, *, clock: Callable[[], datetime] = utcnow):
        self.system = ctx.system
        self._ctx = ctx
        self._engine = ctx.engine
        self._clock = clock
        try:
            self.config = CMConfig.model_validate(dict(ctx.config))
        except ValidationError as exc:
            raise ValueError(f"system {ctx.system!r}: invalid CM config: {exc}") from None
        self._catalog: Catalog | None = None
        self._learning: dict[str, tuple[int, int]] = {}
        self._learning_at: float | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load and validate the catalog; a broken file raises MappingError (file:line: field: ...)."""
        base = Path(self._ctx.settings.mappings_dir)
        # Small files, read once at start-up: not worth a thread.
        self._catalog = load_catalog(base, self.config.offers, self.config.segments)
        self._learning_at = None

    async def check(self) -> Health:
        if self._catalog is None:
            return Health(False, "CM catalog not loaded (start() was not called or failed)")
        try:
            async with self._engine.connect() as conn:
                await conn.execute(select(cm_offer_learning.c.offer_id).limit(1))
                await conn.execute(select(cm_profiles.c.customer_id).limit(1))
        except SQLAlchemyError as exc:
            return Health(False, f"CM store unavailable: {type(exc).__name__}: {exc}".splitlines()[0])
        c = self._catalog
        return Health(True, f"{len(c.offers)} offers, {len(c.segments)} segments, catalog {c.version}")

    async def close(self) -> None:
        self._learning = {}
        self._learning_at = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            raise RuntimeError(f"system {self.system!r}: the CM catalog is not loaded; call start() first")
        return self._catalog

    # --- ProfileSource ---------------------------------------------------------------------------

    async def fetch(self, customer_ids: Sequence[str]) -> dict[str, Profile]:
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return {}
        catalog = self.catalog
        now = self._clock()
        async with self._engine.connect() as conn:
            rows = (await conn.execute(
                select(cm_profiles.c.customer_id, cm_profiles.c.state, cm_profiles.c.version)
                .where(cm_profiles.c.customer_id.in_(ids))
            )).all()
        out: dict[str, Profile] = {}
        for customer_id, raw, version in rows:
            state = CustomerState.from_dict(raw)
            state.version = version
            out[customer_id] = {
                "segments": [{"id": s.id, "name": s.name}
                             for s in policy.segments_of(state, catalog.segments, now)],
                "offerHistory": policy.offer_history(state),
                "attributes": dict(state.attributes),
            }
        return out

    # --- DecisionEngine --------------------------------------------------------------------------

    async def offers(self) -> list[Offer]:
        return [Offer(o.id, o.title, tuple(o.topics), tuple(o.channels)) for o in self.catalog.offers]

    async def decide(
        self,
        customer_id: str,
        channel: Channel | None,
        limit: int,
        pending: Sequence[ContactEvent] = (),
    ) -> list[NextBestAction]:
        catalog = self.catalog
        now = self._clock()
        async with self._engine.connect() as conn:
            state, _ = await self._read(conn, customer_id)
            learning = await self._learning_snapshot(conn)
        for event in pending:  # in memory only: the answer reflects events CM has not consumed yet
            if event.customer_id == customer_id:
                state = policy.apply_event(state, _normalise(event), now, catalog)
        return policy.rank(state, catalog, channel, now, learning, limit, customer_id)

    async def _learning_snapshot(self, conn: AsyncConnection) -> dict[str, tuple[int, int]]:
        ttl = self.config.learning_ttl_seconds
        fresh = self._learning_at is not None and time.monotonic() - self._learning_at < ttl
        if not fresh:
            rows = (await conn.execute(
                select(cm_offer_learning.c.offer_id, cm_offer_learning.c.shown, cm_offer_learning.c.accepted)
            )).all()
            self._learning = {r.offer_id: (int(r.shown), int(r.accepted)) for r in rows}
            self._learning_at = time.monotonic()
        return self._learning

    # --- EventConsumer ---------------------------------------------------------------------------

    async def consume(self, tx: Tx, event: CloudEvent) -> set[str]:
        catalog = self.catalog
        now = self._clock()
        if event.type in EVENT_KINDS:
            contact = _read_contact_event(event)
            state, version = await self._locked(tx, contact.customer_id, now)
            new = policy.apply_event(state, contact, now, catalog)
            if new.version == state.version:  # already applied (event id remembered in the state)
                return set()
            await self._write(tx, contact.customer_id, new, version, now)
            await self._learn(tx, contact)
            return {contact.customer_id}
        if event.type in CUSTOMER_EVENTS:
            customer_id, attributes = _read_customer_event(event)
            state, version = await self._locked(tx, customer_id, now)
            await self._write(tx, customer_id, policy.apply_attributes(state, attributes), version, now)
            return {customer_id}
        return set()

    async def _locked(self, tx: Tx, customer_id: str, now: datetime) -> tuple[CustomerState, int]:
        """The customer's state, locked until `tx` ends: consumers of one customer in several hub
        processes queue up here instead of racing (FOR UPDATE on PostgreSQL; SQLite has one writer)."""
        await tx.execute(
            dialect_insert(tx, cm_profiles)
            .values(customer_id=customer_id, state=CustomerState().to_dict(), version=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=[cm_profiles.c.customer_id])
        )
        row = (await tx.execute(
            select(cm_profiles.c.state, cm_profiles.c.version)
            .where(cm_profiles.c.customer_id == customer_id)
            .with_for_update()
        )).one()
        state = CustomerState.from_dict(row.state)
        state.version = row.version  # the row's version is the truth
        return state, row.version

    async def _read(self, conn: AsyncConnection, customer_id: str) -> tuple[CustomerState, int | None]:
        row = (await conn.execute(
            select(cm_profiles.c.state, cm_profiles.c.version).where(cm_profiles.c.customer_id == customer_id)
        )).first()
        if row is None:
            return CustomerState(), None
        state = CustomerState.from_dict(row.state)
        state.version = row.version  # the row's version is the truth
        return state, row.version

    async def _write(self, tx: Tx, customer_id: str, state: CustomerState, old_version: int,
                     now: datetime) -> None:
        new_version = old_version + 1
        state.version = new_version
        # The row is locked by `_locked`; the version check guards against a caller that did not lock.
        result = await tx.execute(
            update(cm_profiles)
            .where(cm_profiles.c.customer_id == customer_id, cm_profiles.c.version == old_version)
            .values(state=state.to_dict(), version=new_version, updated_at=now)
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate(
                f"CM profile {customer_id!r} changed concurrently (expected version {old_version}); retry"
            )

    async def _learn(self, tx: Tx, event: ContactEvent) -> None:
        shown = int(event.type is ContactEventType.PROPOSITION_SHOWN)
        accepted = int(event.type is ContactEventType.PROPOSITION_RESPONSE
                       and event.response is PropositionResponse.ACCEPTED)
        if not event.offer_id or not (shown or accepted):
            return
        ins = dialect_insert(tx, cm_offer_learning).values(
            offer_id=event.offer_id, shown=shown, accepted=accepted
        )
        await tx.execute(ins.on_conflict_do_update(
            index_elements=[cm_offer_learning.c.offer_id],
            set_={
                "shown": cm_offer_learning.c.shown + ins.excluded.shown,
                "accepted": cm_offer_learning.c.accepted + ins.excluded.accepted,
            },
        ))


# --- payloads --------------------------------------------------------------------------------------


def _normalise(event: ContactEvent) -> ContactEvent:
    if event.occurred_at.tzinfo is None:
        return dataclasses.replace(event, occurred_at=event.occurred_at.replace(tzinfo=UTC))
    return event


def _read_contact_event(event: CloudEvent) -> ContactEvent:
    try:
        contact = ContactEvent.from_data(event.id, event.data)
    except KeyError as exc:
        raise PermanentError(f"{event.type} {event.id}: data lacks {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"{event.type} {event.id}: unreadable data: {exc}") from exc
    expected = EVENT_KINDS[event.type]
    if contact.type is not expected:
        raise PermanentError(
            f"{event.type} {event.id}: data.eventType {contact.type.value} does not match"
            f" (expected {expected})"
        )
    if not contact.customer_id or len(contact.customer_id) > MAX_CUSTOMER_ID:
        raise PermanentError(f"{event.type} {event.id}: customerId must be 1-{MAX_CUSTOMER_ID} characters")
    if contact.offer_id is not None and (not isinstance(contact.offer_id, str)
                                         or not contact.offer_id or len(contact.offer_id) > MAX_OFFER_ID):
        raise PermanentError(
            f"{event.type} {event.id}: offerId must be a string of 1-{MAX_OFFER_ID} characters"
        )
    if contact.type is ContactEventType.PROPOSITION_SHOWN and not contact.offer_id:
        raise PermanentError(f"{event.type} {event.id}: a proposition shown needs an offerId")
    if contact.type is ContactEventType.PROPOSITION_RESPONSE and not (contact.offer_id and contact.response):
        raise PermanentError(f"{event.type} {event.id}: a response needs an offerId and a response")
    if contact.topic is not None and not isinstance(contact.topic, str):
        raise PermanentError(f"{event.type} {event.id}: topic must be a string")
    return _normalise(contact)


def _read_customer_event(event: CloudEvent) -> tuple[str, dict[str, Any]]:
    customer_id = event.data.get("customerId")
    if not isinstance(customer_id, str) or not customer_id or len(customer_id) > MAX_CUSTOMER_ID:
        raise PermanentError(
            f"{event.type} {event.id}: customerId must be a string of 1-{MAX_CUSTOMER_ID} characters"
        )
    attributes = event.data.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise PermanentError(f"{event.type} {event.id}: attributes must be an object")
    return customer_id, attributes
