"""Use case: record contact events. Validated as a whole, stored in the outbox in one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.contacts import Committed, ContactService
from hub.core.decisions import Decisions
from hub.core.errors import BadInput, SystemUnavailable, TooManyEvents, UnknownOffer
from hub.events import CONTACT_EVENT_TYPES, contact_event_data, make, new_id, utcnow
from hub.messaging.outbox import Outbox
from hub.model import ContactEvent, ContactEventType, DecisionRequest, NextBestAction, PropositionResponse

# A clock a little ahead on the channel's side is normal; an event days in the future is a bug.
FUTURE_SKEW = timedelta(minutes=5)
MAX_TOPIC = 100


@dataclass(frozen=True, slots=True)
class EventInput:
    type: ContactEventType
    offer_id: str | None = None
    response: PropositionResponse | None = None
    topic: str | None = None
    occurred_at: datetime | None = None
    decision_id: str | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    events: list[ContactEvent]
    next_best_actions: list[NextBestAction]
    # Set when the decision engine could not answer: the events are recorded all the same.
    decisions_error: SystemUnavailable | None = None
    # Whose NBAs reflect the events (recorded with decide=False: not decided yet, see `decide`).
    request: DecisionRequest | None = None


class EventService:
    def __init__(
        self,
        engine: AsyncEngine,
        contacts: ContactService,
        decisions: Decisions,
        outbox: Outbox,
        source: str,
        max_events: int,
        committed: Committed,
        pace: Callable[[], Awaitable[None]],
    ):
        self._engine = engine
        self._contacts = contacts
        self._decisions = decisions
        self._outbox = outbox
        self._source = source
        self._max_events = max_events
        self._committed = committed
        self._pace = pace

    async def record(
        self, contact_id: str, inputs: Sequence[EventInput], nba_limit: int = 3, *, decide: bool = True
    ) -> Recorded:
        """Validate and store the events; with `decide`, the NBAs that reflect them too (a caller that
        does not ask for them, e.g. a channel reporting what it showed, leaves CM's ranking undone)."""
        if len(inputs) > self._max_events:
            raise TooManyEvents(
                f"at most {self._max_events} events per call, got {len(inputs)}", limit=self._max_events
            )
        offers = {o.id for o in await self._decisions.offers()} if _names_offers(inputs) else set()
        now = utcnow()
        for i, item in enumerate(inputs):
            _check(i, item, offers, now)
        await self._pace()  # while the pipeline is behind, the caller waits instead of it
        async with self._engine.begin() as tx:
            contact = await self._contacts.require_open(tx, contact_id)
            events = [
                ContactEvent(
                    id=new_id(),
                    type=item.type,
                    customer_id=contact.customer_id,
                    contact_id=contact.id,
                    channel=contact.channel,
                    occurred_at=item.occurred_at or now,
                    offer_id=item.offer_id,
                    response=item.response,
                    topic=item.topic,
                    decision_id=item.decision_id,
                )
                for item in inputs
            ]
            await self._outbox.add(
                tx,
                [
                    make(
                        CONTACT_EVENT_TYPES[e.type],
                        contact_event_data(e),
                        id=e.id,
                        source=self._source,
                        subject=e.customer_id,
                        time=e.occurred_at,
                        correlationid=contact.id,
                    )
                    for e in events
                ],
            )
        self._committed(self._decisions.system, [])  # wakes the relay; CM's data changes on consume
        request = DecisionRequest(contact.customer_id, contact.channel, nba_limit)
        recorded = Recorded(events, [], None, request)
        return await self.decide(recorded) if decide else recorded

    async def decide(self, recorded: Recorded) -> Recorded:
        """The NBAs after the recorded events. CM consumes the events from the bus; until it has, they
        are passed along as pending, so the answer already reflects them."""
        request = recorded.request
        assert request is not None
        try:
            nbas = await self._decisions.decide_one(request, pending=recorded.events)
        except SystemUnavailable as exc:  # the defaults, and the error
            return replace(recorded, next_best_actions=self._decisions.fallback(request), decisions_error=exc)
        return replace(recorded, next_best_actions=nbas)


def _names_offers(inputs: Sequence[EventInput]) -> bool:
    return any(item.offer_id is not None for item in inputs)


def _check(i: int, item: EventInput, offers: set[str], now: datetime) -> None:
    where = f"events[{i}]"
    needs_offer = item.type in (ContactEventType.PROPOSITION_SHOWN, ContactEventType.PROPOSITION_RESPONSE)
    if needs_offer and not item.offer_id:
        raise BadInput(f"{where}: {item.type.value} needs an offerId", field=f"{where}.offerId")
    if item.type is ContactEventType.PROPOSITION_RESPONSE and item.response is None:
        raise BadInput(f"{where}: PROPOSITION_RESPONSE needs a response", field=f"{where}.response")
    if item.type is not ContactEventType.PROPOSITION_RESPONSE and item.response is not None:
        raise BadInput(f"{where}: only PROPOSITION_RESPONSE takes a response", field=f"{where}.response")
    if item.type in (ContactEventType.INTEREST_SHOWN, ContactEventType.BANNER_CLICK) and not (
        item.topic or item.offer_id
    ):
        raise BadInput(f"{where}: {item.type.value} needs a topic or an offerId", field=f"{where}.topic")
    if item.offer_id is not None and item.offer_id not in offers:
        raise UnknownOffer(
            f"{where}: unknown offer {item.offer_id!r}", field=f"{where}.offerId", offerId=item.offer_id
        )
    if item.topic is not None and not (0 < len(item.topic.strip()) <= MAX_TOPIC):
        raise BadInput(f"{where}: topic must be 1 to {MAX_TOPIC} characters", field=f"{where}.topic")
    if item.occurred_at is not None:
        if item.occurred_at.tzinfo is None:
            raise BadInput(f"{where}: occurredAt needs a time zone", field=f"{where}.occurredAt")
        if item.occurred_at > now + FUTURE_SKEW:
            raise BadInput(f"{where}: occurredAt is in the future", field=f"{where}.occurredAt")
