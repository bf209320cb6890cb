"""Use case: customer requests (quote, service, complaint), scenario steps 2 and 4.

The CRM (role `request_registry`) stores each request with its status history; the hub enforces the
allowed transitions (hub.model.TRANSITIONS) and writes, in the same transaction, the events that report
it: `request.submitted` for the back office and one `request.status` per status the request gets (the
flow `request-status-to-cm` takes those to CM). The back office (role `back_office`) is handed each new
request in that transaction and may settle it straight through; an external back office gets
`request.submitted` through a flow and reports back with `request.status`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core import reads
from hub.core.contacts import Committed, ContactService
from hub.core.decisions import Decisions
from hub.core.errors import BadInput, InvalidTransition, UnknownOffer, UnknownRequest
from hub.events import (
    REQUEST_STATUS,
    REQUEST_SUBMITTED,
    CloudEvent,
    MalformedEvent,
    RequestStatusData,
    RequestSubmittedData,
    make,
    read,
    utcnow,
)
from hub.messaging.outbox import Outbox
from hub.model import CustomerRequest, RequestKind, RequestStatus, StatusChange, may_move
from hub.ports import BackOffice, PermanentError, RequestRegistry, Tx

log = logging.getLogger(__name__)

SUBJECT_MAX = 200
DETAILS_MAX = 4000
NOTE_MAX = 500
ID_MAX = 40


class RequestService:
    def __init__(
        self,
        engine: AsyncEngine,
        registry_system: str,
        registry: RequestRegistry,
        back_office: BackOffice | None,
        contacts: ContactService,
        decisions: Decisions,
        outbox: Outbox,
        source: str,
        committed: Committed,
    ):
        self._engine = engine
        self._registry_system = registry_system
        self._registry = registry
        self._back_office = back_office
        self._contacts = contacts
        self._decisions = decisions  # CM's catalog: the offer a quote is for must be one of its offers
        self._outbox = outbox
        self._source = source
        self._committed = committed

    async def submit(
        self,
        contact_id: str,
        kind: RequestKind,
        subject: str,
        details: str | None,
        offer_id: str | None = None,
    ) -> CustomerRequest:
        subject = subject.strip()
        if not 0 < len(subject) <= SUBJECT_MAX:
            raise BadInput(f"subject must be 1 to {SUBJECT_MAX} characters", field="subject")
        if details is not None and len(details) > DETAILS_MAX:
            raise BadInput(f"details must be at most {DETAILS_MAX} characters", field="details")
        if offer_id is not None and offer_id not in {o.id for o in await self._decisions.offers()}:
            raise UnknownOffer(f"no offer {offer_id[:80]!r} in CM's catalog", offerId=offer_id[:80])
        async with self._engine.begin() as tx:
            contact = await self._contacts.require_open(tx, contact_id)
            now = utcnow()
            opened = StatusChange(RequestStatus.OPEN, now, contact.channel.value)
            request = CustomerRequest(
                id=f"req_{uuid.uuid4().hex[:20]}",
                customer_id=contact.customer_id,
                contact_id=contact.id,
                kind=kind,
                subject=subject,
                details=details,
                status=RequestStatus.OPEN,
                created_at=now,
                history=(opened,),
                offer_id=offer_id,
            )
            events = [self._submitted(request), self._status(request, opened)]
            settled = await self._back_office.hand_over(tx, request) if self._back_office else ()
            for change in settled:
                if not may_move(request.status, change.status):
                    log.warning(
                        "back office moved request %s from %s to %s, which is not allowed: ignored",
                        request.id, request.status, change.status,
                    )
                    continue
                request = request.moved(change)
                events.append(self._status(request, change))
            await self._registry.add_request(tx, request)
            await self._outbox.add(tx, events)
        self._committed(self._registry_system, [request.customer_id])
        return request

    async def update_status(
        self, request_id: str, status: RequestStatus, note: str | None, by: str
    ) -> CustomerRequest:
        if not request_id or len(request_id) > ID_MAX:
            raise UnknownRequest(f"no request with id {request_id[:ID_MAX]!r}", requestId=request_id[:ID_MAX])
        if note is not None and len(note) > NOTE_MAX:
            raise BadInput(f"note must be at most {NOTE_MAX} characters", field="note")
        async with self._engine.begin() as tx:
            request = await self._registry.locked_request(tx, request_id)
            if request is None:
                raise UnknownRequest(f"no request with id {request_id!r}", requestId=request_id)
            if not may_move(request.status, status):
                # Raised inside the transaction: nothing of it is kept.
                raise InvalidTransition(
                    f"request {request_id!r} is {request.status.value} and cannot become {status.value}",
                    requestId=request_id,
                    status=request.status.value,
                    to=status.value,
                )
            change = StatusChange(status, utcnow(), by, note)
            await self._registry.add_status(tx, request_id, change)
            request = request.moved(change)
            await self._outbox.add(tx, [self._status(request, change)])
        self._committed(self._registry_system, [request.customer_id])
        return request

    async def get(self, request_ids: Sequence[str]) -> Mapping[str, CustomerRequest]:
        reads.uncacheable()  # read from the CRM every time: an answer holding requests is not kept
        return await self._registry.requests([i for i in request_ids if 0 < len(i) <= ID_MAX])

    async def of_customers(self, customer_ids: Sequence[str]) -> Mapping[str, Sequence[CustomerRequest]]:
        reads.uncacheable()
        return await self._registry.requests_of(customer_ids)

    async def apply_reported(self, tx: Tx, event: CloudEvent) -> set[str]:
        """A status an external back office reports (`request.status` through a flow into the hub),
        correlated by request id. The same status again changes nothing; a move the transitions forbid,
        or an unknown request, is a dead letter with its reason."""
        if event.source == self._source:
            return set()  # the hub's own report of a status, heard back on the bus
        try:
            data = read(event, RequestStatusData)
        except MalformedEvent as exc:
            raise PermanentError(str(exc)) from exc
        request = await self._registry.locked_request(tx, data.requestId)
        if request is None:
            raise PermanentError(f"request.status {event.id}: no request {data.requestId!r}")
        if request.status is data.status:
            return set()
        if not may_move(request.status, data.status):
            raise PermanentError(
                f"request.status {event.id}: request {data.requestId!r} is {request.status.value} and "
                f"cannot become {data.status.value}"
            )
        change = StatusChange(data.status, data.at, (data.by or event.source)[:80], data.note)
        await self._registry.add_status(tx, request.id, change)
        await self._outbox.add(tx, [self._status(request.moved(change), change)])
        return {request.customer_id}

    def _submitted(self, request: CustomerRequest) -> CloudEvent:
        return make(
            REQUEST_SUBMITTED,
            RequestSubmittedData(
                requestId=request.id,
                customerId=request.customer_id,
                contactId=request.contact_id,
                kind=request.kind,
                subject=request.subject,
                details=request.details,
                offerId=request.offer_id,
                at=request.created_at,
            ),
            source=self._source,
            subject=request.customer_id,
            correlationid=request.id,
        )

    def _status(self, request: CustomerRequest, change: StatusChange) -> CloudEvent:
        return make(
            REQUEST_STATUS,
            RequestStatusData(
                requestId=request.id,
                customerId=request.customer_id,
                kind=request.kind,
                status=change.status,
                at=change.at,
                note=change.note,
                by=change.by,
            ),
            source=self._source,
            subject=request.customer_id,
            correlationid=request.id,
        )
