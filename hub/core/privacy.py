"""Use cases: erase a customer everywhere (GDPR article 17), export a customer's data (articles 15, 20).

- `PrivacyService.request`: in one transaction, the request with one receipt per system of the mapping
  (NOT_SUPPORTED at once for a system without a privacy handler), the event `privacy.<kind>.requested`
  in the outbox, and for an erasure the hub's own first step: the customer's identity keys and golden
  id are removed and a tombstone is kept, so the same email later is a new customer and every consumer
  drops events about the erased customer (hub.messaging.consumer).
- `PrivacyService.handle`: the bus handler of the queue `privacy.<system>` (one per system that handles
  privacy, and `privacy.hub` for the hub's own part): it asks the system and keeps its receipt. A
  failure is recorded on the receipt and raised, so the bus retries it with its back-off and
  dead-letters it at the delivery limit (the request is then FAILED until `hub dlq replay`); a
  redelivery of an answered request does nothing. A system that shares the hub's store answers in the
  transaction that records its receipt (exactly once); an external one is asked outside any
  transaction and its receipt recorded afterwards.
- `HubPrivacy`: the hub's own part (identity keys and contacts) as a privacy handler.

The customer's keys are kept on the request only while systems still need them to find the customer
(a system read by email); they are wiped when every system has answered. Nothing here logs personal
data: requests, systems and reasons only (a system's failure is told by its kind or by the reason its
adapter gives, never by a driver's message, which may quote parameters).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.core.errors import NotFound
from hub.events import (
    PRIVACY_ERASURE_REQUESTED,
    PRIVACY_EXPORT_REQUESTED,
    CloudEvent,
    MalformedEvent,
    PrivacyRequested,
    make,
    read,
    utcnow,
)
from hub.messaging.outbox import Outbox
from hub.model import GOLDEN_ID, HUB_SYSTEM, Key
from hub.model.privacy import (
    SETTLED,
    PrivacyKind,
    PrivacyRequest,
    PrivacyStatus,
    PrivacySubject,
    Receipt,
    ReceiptStatus,
    status_of,
)
from hub.ports import AdapterError, NotSupported, PermanentError, PrivacyHandler
from hub.store.db import reading
from hub.store.privacy import privacy_receipts, privacy_requests, privacy_tombstones
from hub.store.tables import contacts, customer_keys, customers
from hub.waiting import bounded

log = logging.getLogger(__name__)

Tx = AsyncConnection
Committed = Callable[[str, Sequence[str]], None]

PRIVACY_EVENTS = (PRIVACY_ERASURE_REQUESTED, PRIVACY_EXPORT_REQUESTED)
EVENT_OF = {PrivacyKind.ERASURE: PRIVACY_ERASURE_REQUESTED, PrivacyKind.EXPORT: PRIVACY_EXPORT_REQUESTED}
# The `system` of the change announcement after an erasure: every hub process forgets the customer
# (cached reads, the identity keys it remembers, that the golden id exists).
ERASED = "hub.erased"
DETAIL_MAX = 500


def queue_of(system: str) -> str:
    """The queue a system's privacy requests wait in."""
    return f"privacy.{system}"


class PrivacyFailure(Exception):
    """A system failed to answer a privacy request; the message is the receipt's reason (no personal
    data). Raised to the bus, which retries and at last dead-letters it."""


@dataclass(frozen=True, slots=True)
class PrivacyTarget:
    """A system as privacy requests see it: its handler (None: NOT_SUPPORTED, `reason` says why), the
    key kind it is read by (the mapping's `key`), and how long an external system may take."""

    system: str
    handler: PrivacyHandler | None
    key: str = GOLDEN_ID
    timeout: float = 5.0
    reason: str = ""

    @property
    def transactional(self) -> bool:
        return bool(getattr(self.handler, "transactional", True))


class PrivacyService:
    def __init__(
        self,
        engine: AsyncEngine,
        targets: Sequence[PrivacyTarget],
        outbox: Outbox,
        source: str,
        committed: Committed,
        delivery_limit: int,
        export_retention: float = 7 * 86_400.0,
    ):
        self._engine = engine
        self._reader = reading(engine)
        # The hub's own part first, then the mapping's systems in their order.
        self._targets = {t.system: t for t in targets}
        self._outbox = outbox
        self._source = source
        self._committed = committed
        self._limit = max(1, delivery_limit)
        self._retention = timedelta(seconds=export_retention)

    @property
    def handled(self) -> list[str]:
        """The systems that get privacy requests on a queue of their own (the hub's part included)."""
        return [t.system for t in self._targets.values() if t.handler is not None]

    # --- the request ---------------------------------------------------------------------------------

    async def request(self, kind: PrivacyKind, customer_id: str) -> PrivacyRequest:
        """Erase or export a customer: the request as made (its receipts PENDING, or NOT_SUPPORTED).
        Erasing a customer erased before answers that erasure's request; NotFound for anyone else the
        hub does not know."""
        cid = customer_id.strip()
        if not 0 < len(cid) <= 40:
            raise NotFound(f"no customer with id {cid[:40]!r}", customerId=cid[:40])
        now = utcnow()
        request_id = f"prv_{uuid.uuid4().hex[:20]}"
        async with self._engine.begin() as tx:
            # Locked: two erasures of one customer, or an erasure and an export, go one after the other.
            found = await tx.execute(select(customers.c.id).where(customers.c.id == cid).with_for_update())
            if found.first() is None:
                earlier = await self._erasure_of(tx, cid) if kind is PrivacyKind.ERASURE else None
                if earlier is None:
                    raise NotFound(f"no customer with id {cid!r}", customerId=cid)
                request_id, made = earlier, False  # erased before: that erasure answers
            else:
                await self._make(tx, kind, cid, request_id, now)
                made = True
        if made and kind is PrivacyKind.ERASURE:
            self._committed(ERASED, [cid])  # every process forgets the customer; wakes the relay
        elif made:
            self._committed(HUB_SYSTEM, [])  # wakes the relay
        found_request = await self.get(request_id)
        assert found_request is not None, "a request just made exists"
        return found_request

    async def _erasure_of(self, tx: Tx, customer_id: str) -> str | None:
        row = await tx.execute(
            select(privacy_requests.c.id)
            .where(
                privacy_requests.c.customer_id == customer_id,
                privacy_requests.c.kind == PrivacyKind.ERASURE.value,
            )
            .order_by(privacy_requests.c.created_at)
            .limit(1)
        )
        return row.scalar()

    async def _make(self, tx: Tx, kind: PrivacyKind, cid: str, request_id: str, now: datetime) -> None:
        keys = (
            await tx.execute(
                select(customer_keys.c.kind, customer_keys.c.value)
                .where(customer_keys.c.customer_id == cid)
                .order_by(customer_keys.c.created_at, customer_keys.c.kind, customer_keys.c.value)
            )
        ).all()
        await tx.execute(
            privacy_requests.insert().values(
                id=request_id,
                kind=kind.value,
                customer_id=cid,
                status=PrivacyStatus.PENDING.value,
                identity_keys=[[k.kind, k.value] for k in keys],
                created_at=now,
            )
        )
        await tx.execute(
            privacy_receipts.insert(),
            [
                {
                    "request_id": request_id,
                    "system": t.system,
                    "status": (ReceiptStatus.PENDING if t.handler else ReceiptStatus.NOT_SUPPORTED).value,
                    "detail": None if t.handler else t.reason[:DETAIL_MAX] or None,
                    "at": None if t.handler else now,
                    "attempts": 0,
                    "final": False,
                    "part": None,
                }
                for t in self._targets.values()
            ],
        )
        if kind is PrivacyKind.ERASURE:
            # The hub's first step, at once: nobody finds the customer by a key or an id any more.
            await tx.execute(
                privacy_tombstones.insert().values(customer_id=cid, request_id=request_id, erased_at=now)
            )
            await tx.execute(delete(customer_keys).where(customer_keys.c.customer_id == cid))
            await tx.execute(delete(customers).where(customers.c.id == cid))
        await self._outbox.add(
            tx,
            [
                make(
                    EVENT_OF[kind],
                    PrivacyRequested(requestId=request_id, customerId=cid, kind=kind.value, at=now),
                    source=self._source,
                    subject=cid,
                    correlationid=request_id,
                )
            ],
        )
        log.info("privacy request %s: %s asked of %d systems", request_id, kind.value, len(self._targets))

    # --- reading -------------------------------------------------------------------------------------

    async def get(self, request_id: str) -> PrivacyRequest | None:
        if not 0 < len(request_id) <= 40:
            return None
        async with self._reader.connect() as conn:
            row = (
                await conn.execute(select(privacy_requests).where(privacy_requests.c.id == request_id))
            ).first()
            if row is None:
                return None
            rows = (
                await conn.execute(
                    select(privacy_receipts).where(privacy_receipts.c.request_id == request_id)
                )
            ).all()
        order = {name: i for i, name in enumerate(self._targets)}
        rows = sorted(rows, key=lambda r: (order.get(r.system, len(order)), r.system))
        receipts = tuple(_receipt(r) for r in rows)
        kind = PrivacyKind(row.kind)
        status = PrivacyStatus(row.status)
        document = None
        exported = kind is PrivacyKind.EXPORT and row.completed_at is not None
        expires = row.completed_at + self._retention if exported else None
        if exported and status is PrivacyStatus.DONE and expires is not None and expires > utcnow():
            document = {
                "requestId": row.id,
                "customerId": row.customer_id,
                "exportedAt": row.completed_at.isoformat() if row.completed_at else None,
                "systems": {r.system: r.part or {} for r in rows if r.status == ReceiptStatus.DONE.value},
                "notSupported": [r.system for r in rows if r.status == ReceiptStatus.NOT_SUPPORTED.value],
            }
        return PrivacyRequest(
            id=row.id,
            kind=kind,
            customer_id=row.customer_id,
            status=status,
            created_at=row.created_at,
            completed_at=row.completed_at,
            receipts=receipts,
            document=document,
            expires_at=expires,
        )

    async def expire(self) -> int:
        """Delete the parts of exports past their retention (completed, or begun, that long ago): an
        export is personal data. Returns how many requests lost their parts. Run by every hub process
        with the rest of the history's retention (hub.messaging.retention)."""
        cutoff = utcnow() - self._retention
        async with self._engine.begin() as tx:
            old = (
                select(privacy_requests.c.id)
                .where(
                    privacy_requests.c.kind == PrivacyKind.EXPORT.value,
                    func.coalesce(privacy_requests.c.completed_at, privacy_requests.c.created_at) < cutoff,
                )
                .scalar_subquery()
            )
            done = await tx.execute(
                update(privacy_receipts)
                .where(privacy_receipts.c.part.is_not(None), privacy_receipts.c.request_id.in_(old))
                .values(part=None)
            )
        return int(done.rowcount or 0)

    # --- the systems' answers (the bus handler of each system's queue) -------------------------------

    async def handle(self, system: str, event: CloudEvent) -> None:
        try:
            data = read(event, PrivacyRequested)
        except MalformedEvent as exc:
            raise PermanentError(str(exc)) from exc
        request_id = data.requestId
        async with self._reader.connect() as conn:
            request = (
                await conn.execute(select(privacy_requests).where(privacy_requests.c.id == request_id))
            ).first()
            receipt = (
                await conn.execute(
                    select(privacy_receipts).where(
                        privacy_receipts.c.request_id == request_id, privacy_receipts.c.system == system
                    )
                )
            ).first()
        if request is None or receipt is None:
            log.info("privacy request %s: nothing asked of %s (unknown)", request_id, system)
            return
        if ReceiptStatus(receipt.status) in SETTLED:
            return  # answered before: a redelivery
        target = self._targets.get(system)
        if target is None or target.handler is None:
            # The system left the mapping (a reload) after the request was made: nobody can answer.
            await self._record_failure(request_id, system, "the system is no longer in the mapping", 1, True)
            return
        kind = PrivacyKind(request.kind)
        subject = PrivacySubject(
            request_id=request_id,
            customer_id=request.customer_id,
            key=_key_for(target.key, request.customer_id, request.identity_keys),
            keys=tuple(Key(k, v) for k, v in request.identity_keys or ()),
        )
        # A receipt dead-lettered before is being replayed: its attempts count from 0 again.
        attempts = 0 if receipt.final else int(receipt.attempts)
        try:
            await self._ask(target, kind, subject)
        except NotSupported as exc:
            await self._record(request_id, system, ReceiptStatus.NOT_SUPPORTED, _short(str(exc)) or None)
            return
        except Exception as exc:
            reason = _reason(exc, system, target.timeout)
            dead = isinstance(exc, PermanentError) or attempts + 1 >= self._limit
            await self._record_failure(request_id, system, reason, attempts + 1, dead)
            log.warning(
                "privacy request %s: %s failed (attempt %d%s): %s",
                request_id,
                system,
                attempts + 1,
                "; dead-lettered" if dead else "; retried",
                reason,
            )
            if isinstance(exc, PermanentError):
                raise PermanentError(reason) from None
            raise PrivacyFailure(reason) from None
        if kind is PrivacyKind.ERASURE:
            self._committed(system, [request.customer_id])  # its cached reads of the customer go too

    async def _ask(self, target: PrivacyTarget, kind: PrivacyKind, subject: PrivacySubject) -> None:
        handler = target.handler
        assert handler is not None
        if target.transactional:
            async with self._engine.begin() as tx:
                if not await self._open(tx, subject.request_id, target.system):
                    return
                asked = handler.erase if kind is PrivacyKind.ERASURE else handler.export
                result = await asked(tx, subject)
                await self._answered(tx, subject.request_id, target.system, kind, result)
            return
        async with self._engine.connect() as idle:  # no transaction begun: the system ignores it
            asked = handler.erase if kind is PrivacyKind.ERASURE else handler.export
            result = await bounded(asked(idle, subject), target.timeout + 1.0)  # it bounds itself first
        async with self._engine.begin() as tx:
            if await self._open(tx, subject.request_id, target.system):
                await self._answered(tx, subject.request_id, target.system, kind, result)

    async def _open(self, tx: Tx, request_id: str, system: str) -> bool:
        """Lock the receipt; False when it was answered meanwhile (another process, a redelivery)."""
        row = (
            await tx.execute(
                select(privacy_receipts.c.status)
                .where(privacy_receipts.c.request_id == request_id, privacy_receipts.c.system == system)
                .with_for_update()
            )
        ).first()
        return row is not None and ReceiptStatus(row.status) not in SETTLED

    async def _answered(self, tx: Tx, request_id: str, system: str, kind: PrivacyKind, result: Any) -> None:
        if kind is PrivacyKind.ERASURE:
            detail = _short(str(result)) if result else None
            part = None
        else:
            part = _jsonable(result or {})
            detail = None
        await self._set(tx, request_id, system, ReceiptStatus.DONE, detail, part=part)
        await self._finish(tx, request_id)

    async def _record(self, request_id: str, system: str, status: ReceiptStatus, detail: str | None) -> None:
        async with self._engine.begin() as tx:
            if await self._open(tx, request_id, system):
                await self._set(tx, request_id, system, status, detail)
                await self._finish(tx, request_id)

    async def _record_failure(
        self, request_id: str, system: str, reason: str, attempts: int, final: bool
    ) -> None:
        async with self._engine.begin() as tx:
            if await self._open(tx, request_id, system):
                await self._set(
                    tx, request_id, system, ReceiptStatus.FAILED, reason, attempts=attempts, final=final
                )
                await self._finish(tx, request_id)

    async def _set(
        self,
        tx: Tx,
        request_id: str,
        system: str,
        status: ReceiptStatus,
        detail: str | None,
        *,
        part: Any = None,
        attempts: int | None = None,
        final: bool = False,
    ) -> None:
        values: dict[str, Any] = {"status": status.value, "detail": detail, "at": utcnow(), "final": final}
        if part is not None:
            values["part"] = part
        if attempts is not None:
            values["attempts"] = attempts
        await tx.execute(
            update(privacy_receipts)
            .where(privacy_receipts.c.request_id == request_id, privacy_receipts.c.system == system)
            .values(**values)
        )

    async def _finish(self, tx: Tx, request_id: str) -> None:
        """The request's status from its receipts; when every system has answered, the keys go. The
        request row is locked first, so two systems answering at once cannot both miss the other."""
        await tx.execute(
            select(privacy_requests.c.id).where(privacy_requests.c.id == request_id).with_for_update()
        )
        rows = (
            await tx.execute(select(privacy_receipts).where(privacy_receipts.c.request_id == request_id))
        ).all()
        status = status_of([_receipt(r) for r in rows])
        values: dict[str, Any] = {"status": status.value}
        if status is PrivacyStatus.DONE:
            values.update(completed_at=utcnow(), identity_keys=None)
            log.info("privacy request %s: done", request_id)
        await tx.execute(update(privacy_requests).where(privacy_requests.c.id == request_id).values(**values))


class HubPrivacy:
    """The hub's own part of a privacy request: the identity keys and golden id (removed already when
    the erasure was requested; removed again here, in case a contact started meanwhile), and the
    contacts. Shares the hub's store."""

    system = HUB_SYSTEM
    transactional = True

    async def erase(self, tx: Tx, subject: PrivacySubject) -> str:
        cid = subject.customer_id
        gone = await tx.execute(delete(contacts).where(contacts.c.customer_id == cid))
        await tx.execute(delete(customer_keys).where(customer_keys.c.customer_id == cid))
        await tx.execute(delete(customers).where(customers.c.id == cid))
        return f"identity keys and {gone.rowcount or 0} contacts removed"

    async def export(self, tx: Tx, subject: PrivacySubject) -> dict[str, Any]:
        cid = subject.customer_id
        created = (await tx.execute(select(customers.c.created_at).where(customers.c.id == cid))).scalar()
        keys = (
            await tx.execute(
                select(customer_keys)
                .where(customer_keys.c.customer_id == cid)
                .order_by(customer_keys.c.created_at, customer_keys.c.kind, customer_keys.c.value)
            )
        ).all()
        found = (
            await tx.execute(
                select(contacts).where(contacts.c.customer_id == cid).order_by(contacts.c.started_at)
            )
        ).all()
        return {
            "customerId": cid,
            "createdAt": created,
            "keys": [{"kind": k.kind, "value": k.value, "linkedAt": k.created_at} for k in keys],
            "contacts": [
                {
                    "id": c.id,
                    "channel": c.channel,
                    "startedAt": c.started_at,
                    "endedAt": c.ended_at,
                    "outcome": c.outcome,
                }
                for c in found
            ],
        }


def _receipt(r: Any) -> Receipt:
    return Receipt(
        system=r.system,
        status=ReceiptStatus(r.status),
        detail=r.detail,
        at=r.at,
        attempts=int(r.attempts),
        final=bool(r.final),
    )


def _key_for(kind: str, customer_id: str, keys: Sequence[Sequence[str]] | None) -> str:
    """The customer's key in a system read by `kind`: the golden id, or the first key of that kind
    the hub had (as the view reads it); the golden id when the customer had none of that kind."""
    if kind != GOLDEN_ID:
        for k, v in keys or ():
            if k == kind:
                return str(v)
    return customer_id


def _short(text: str) -> str:
    return " ".join(text.split())[:DETAIL_MAX]


def _reason(exc: BaseException, system: str, timeout: float) -> str:
    """Why a system failed, for its receipt and the log: the adapter's own reason (it names no
    personal data, by the SDK's contract), or the kind of failure; never a driver's message."""
    if isinstance(exc, AdapterError):
        return _short(exc.reason)
    if isinstance(exc, PermanentError):
        return _short(str(exc))
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    return f"failed ({type(exc).__name__})"


def _jsonable(value: Any) -> Any:
    """A system's export part as plain JSON (times as ISO 8601 text)."""
    return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))

