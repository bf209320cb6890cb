"""BuiltinCM on a temp SQLite store (and PostgreSQL where the engine matters): consume in a transaction,
fetch, decide with pending events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config import Settings
from hub.config.loader import MappingError
from hub.events import (
    CONTACT_EVENT_TYPES,
    REQUEST_STATUS,
    CloudEvent,
    RequestStatusData,
    contact_event_data,
    make,
)
from hub.messaging.bus.base import PermanentError
from hub.model import (
    Channel,
    ContactEvent,
    ContactEventType,
    DecisionRequest,
    PropositionResponse,
    RequestKind,
    RequestStatus,
)
from hub.ports import AdapterContext, DecisionEngine, EventConsumer, ProfileSource
from hub.store.db import create_engine
from hub_adapters.cm import BuiltinCM, ConcurrentUpdate
from hub_adapters.cm.tables import cm_offer_learning, cm_profiles, metadata
from tests.conftest import fresh_postgres_database

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
_ids = count(1)


@pytest.fixture
def engine(store_engine):
    return store_engine


@pytest.fixture
async def cm(engine):
    ctx = AdapterContext(system="cm", settings=Settings(), engine=engine,
                         config={"learning_ttl_seconds": 0})
    adapter = BuiltinCM(ctx, clock=lambda: NOW)
    await adapter.start()
    yield adapter
    await adapter.close()


def contact(kind: ContactEventType, customer: str = "c1", at: datetime = NOW, **kw) -> ContactEvent:
    return ContactEvent(id=f"ev{next(_ids)}", type=kind, customer_id=customer, contact_id="k1",
                        channel=Channel.WEBSITE, occurred_at=at, **kw)


def cloud(e: ContactEvent) -> CloudEvent:
    return CloudEvent(type=CONTACT_EVENT_TYPES[e.type], source="test", data=contact_event_data(e).to_data(), id=e.id,
                      subject=e.customer_id)


def customer_event(customer: str, attributes: dict, kind: str = "customer.created") -> CloudEvent:
    return CloudEvent(type=kind, source="test", id=f"ev{next(_ids)}",
                      data={"customerId": customer, "name": "Ann", "emails": [], "phones": [],
                            "attributes": attributes})


async def decide(cm, customer, channel, limit, pending=()):
    return (await cm.decide([DecisionRequest(customer, channel, limit)], pending))[0]


async def consume(engine, cm, *events: CloudEvent) -> set[str]:
    changed: set[str] = set()
    async with engine.begin() as tx:
        for e in events:
            changed |= await cm.consume(tx, e)
    return changed


async def test_implements_the_ports_and_is_healthy(cm):
    assert isinstance(cm, ProfileSource) and isinstance(cm, DecisionEngine) and isinstance(cm, EventConsumer)
    assert cm.system == "cm"
    health = await cm.check()
    assert health.ok, health.detail
    offers = await cm.offers()
    assert "mortgage-consult" in {o.id for o in offers}
    assert all(o.channels and o.topics for o in offers)


async def test_consume_then_fetch_shows_history_and_segments(engine, cm):
    shown = contact(ContactEventType.PROPOSITION_SHOWN, offer_id="savings-plus", decision_id="dec_x")
    events = [
        customer_event("c1", {"tier": "gold", "age": 41, "city": "Utrecht", "customer_since": 2015}),
        cloud(shown),
        cloud(contact(ContactEventType.PROPOSITION_SHOWN, offer_id="savings-plus")),
        cloud(contact(ContactEventType.PROPOSITION_RESPONSE, offer_id="savings-plus",
                      response=PropositionResponse.REJECTED)),
        cloud(contact(ContactEventType.INTEREST_SHOWN, topic="mortgage")),
        cloud(contact(ContactEventType.BANNER_CLICK, topic="mortgage")),
    ]
    assert await consume(engine, cm, *events) == {"c1"}
    profiles = await cm.fetch(["c1", "nobody", "c1"])
    assert set(profiles) == {"c1"}
    p = profiles["c1"]
    assert p["attributes"] == {"tier": "gold", "age": 41, "city": "Utrecht", "customer_since": 2015}
    assert {"id": "gold-tier", "name": "Gold tier"} in p["segments"]
    assert "mortgage-prospect" in {s["id"] for s in p["segments"]}
    [history] = p["offerHistory"]
    assert history == {"offerId": "savings-plus", "shown": 2, "accepted": 0, "rejected": 1, "later": 0,
                       "lastShownAt": NOW}
    async with engine.connect() as conn:
        learning = (await conn.execute(select(cm_offer_learning))).all()
        row = (await conn.execute(select(cm_profiles).where(cm_profiles.c.customer_id == "c1"))).one()
    assert [(r.offer_id, r.shown, r.accepted) for r in learning] == [("savings-plus", 2, 0)]
    assert row.version == len(events)
    assert row.state["offers"]["savings-plus"]["last_decision_id"] == "dec_x"
    # Rejected: not offered for 30 days.
    nbas = await decide(cm, "c1", Channel.WEBSITE, 10, ())
    assert "savings-plus" not in {n.offer_id for n in nbas}
    assert nbas[0].offer_id == "mortgage-consult"


async def test_rolled_back_transaction_leaves_nothing(engine, cm):
    with pytest.raises(RuntimeError):
        async with engine.begin() as tx:
            await cm.consume(tx, cloud(contact(ContactEventType.PROPOSITION_SHOWN, offer_id="app-download")))
            raise RuntimeError("the caller failed later in its transaction")
    assert await cm.fetch(["c1"]) == {}
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(cm_offer_learning))).scalar() == 0


async def test_decide_with_pending_reflects_them_without_writing(engine, cm):
    await consume(engine, cm, customer_event("c1", {"age": 35, "tier": "bronze"}))
    before = await decide(cm, "c1", Channel.WEBSITE, 10)
    assert "mortgage-consult" not in {n.offer_id for n in before}
    pending = [contact(ContactEventType.INTEREST_SHOWN, topic="mortgage") for _ in range(2)]
    pending.append(contact(ContactEventType.PROPOSITION_RESPONSE, offer_id="savings-plus",
                           response=PropositionResponse.ACCEPTED))
    pending.append(contact(ContactEventType.INTEREST_SHOWN, customer="someone-else", topic="travel"))
    after = await decide(cm, "c1", Channel.WEBSITE, 10, pending)
    offered = [n.offer_id for n in after]
    assert offered[0] == "mortgage-consult"
    assert "savings-plus" not in offered
    assert "interest in mortgage" in after[0].reason
    assert after[0].decision_id != before[0].decision_id
    # Nothing was written.
    assert await decide(cm, "c1", Channel.WEBSITE, 10) == before
    async with engine.connect() as conn:
        version = (await conn.execute(select(cm_profiles.c.version))).scalar_one()
        learned = (await conn.execute(select(func.count()).select_from(cm_offer_learning))).scalar()
    assert version == 1 and learned == 0
    assert (await cm.fetch(["c1"]))["c1"]["offerHistory"] == []
    # Once consumed, the same events give the same decision.
    await consume(engine, cm, *[cloud(e) for e in pending if e.customer_id == "c1"])
    assert await decide(cm, "c1", Channel.WEBSITE, 10, pending) == after
    assert await decide(cm, "c1", Channel.WEBSITE, 10) == after


async def test_unknown_customer_gets_default_nbas(cm):
    nbas = await decide(cm, "never-seen", Channel.WEBSITE, 3)
    assert 1 <= len(nbas) <= 3
    assert {n.offer_id for n in nbas} <= {"savings-plus", "travel-insurance", "app-download"}
    assert all(n.channel is Channel.WEBSITE and n.reason and n.decision_id.startswith("dec_") for n in nbas)
    assert [n.score for n in nbas] == sorted((n.score for n in nbas), reverse=True)
    assert await cm.fetch(["never-seen"]) == {}
    email = await decide(cm, "never-seen", Channel.EMAIL, 10)
    assert {n.offer_id for n in email} == {"savings-plus", "travel-insurance", "app-download"}


async def test_learning_from_all_customers_changes_the_ranking(engine, cm):
    await consume(engine, cm, customer_event("c1", {"age": 40}))
    before = {n.offer_id: n.score for n in await decide(cm, "c1", Channel.EMAIL, 10)}
    assert max(before, key=before.__getitem__) == "savings-plus"
    events = []
    for i in range(20):  # other customers accept the app offer every time...
        other = f"o{i}"
        events.append(cloud(contact(ContactEventType.PROPOSITION_SHOWN, customer=other,
                                    offer_id="app-download")))
        events.append(cloud(contact(ContactEventType.PROPOSITION_RESPONSE, customer=other,
                                    offer_id="app-download", response=PropositionResponse.ACCEPTED)))
    for i in range(20):  # ...and never take savings
        events.append(cloud(contact(ContactEventType.PROPOSITION_SHOWN, customer=f"s{i}",
                                    offer_id="savings-plus")))
    await consume(engine, cm, *events)
    async with engine.connect() as conn:
        rows = {r.offer_id: (r.shown, r.accepted)
                for r in (await conn.execute(select(cm_offer_learning))).all()}
    assert rows == {"app-download": (20, 20), "savings-plus": (20, 0)}
    ranked = await decide(cm, "c1", Channel.EMAIL, 10)
    after = {n.offer_id: n.score for n in ranked}
    assert ranked[0].offer_id == "travel-insurance"  # savings fell below it
    assert after["savings-plus"] == pytest.approx(before["savings-plus"] * (1 / 30) / 0.1)
    assert after["app-download"] == pytest.approx(before["app-download"] * (21 / 30) / 0.1)
    assert "20/20 accepted" in next(n.reason for n in ranked if n.offer_id == "app-download")


@pytest.mark.parametrize(
    "cloud_event",
    [
        CloudEvent(type="contact.proposition.shown", source="t", data={"eventType": "PROPOSITION_SHOWN"}),
        CloudEvent(type="contact.response", source="t", data={
            "eventType": "PROPOSITION_RESPONSE", "customerId": "c1", "contactId": "k", "channel": "WEBSITE",
            "occurredAt": "2026-03-10T12:00:00+00:00", "offerId": "savings-plus", "response": "MAYBE"}),
        CloudEvent(type="contact.banner.click", source="t", data={
            "eventType": "BANNER_CLICK", "customerId": "c1", "contactId": "k", "channel": "FAX",
            "occurredAt": "2026-03-10T12:00:00+00:00"}),
        CloudEvent(type="contact.banner.click", source="t", data={
            "eventType": "INTEREST_SHOWN", "customerId": "c1", "contactId": "k", "channel": "WEBSITE",
            "occurredAt": "2026-03-10T12:00:00+00:00"}),
        CloudEvent(type="contact.interest.shown", source="t", data={
            "eventType": "INTEREST_SHOWN", "customerId": "c1", "contactId": "k", "channel": "WEBSITE",
            "occurredAt": "yesterday"}),
        CloudEvent(type="customer.updated", source="t", data={"customerId": "c1", "attributes": ["gold"]}),
        CloudEvent(type="customer.created", source="t", data={"name": "no id"}),
        CloudEvent(type="request.status", source="t", data={
            "requestId": "r1", "customerId": "c1", "kind": "COMPLAINT", "status": "DONE",
            "at": "2026-03-10T12:00:00+00:00", "note": None}),
        CloudEvent(type="request.status", source="t", data={
            "customerId": "c1", "kind": "COMPLAINT", "status": "OPEN", "at": "2026-03-10T12:00:00+00:00"}),
        CloudEvent(type="request.status", source="t", data={"x": 1}),
    ],
)
async def test_malformed_payload_is_permanent(engine, cm, cloud_event):
    with pytest.raises(PermanentError) as info:
        async with engine.begin() as tx:
            await cm.consume(tx, cloud_event)
    assert cloud_event.id in str(info.value)
    assert await cm.fetch(["c1"]) == {}


async def test_other_event_types_are_ignored(engine, cm):
    assert await consume(engine, cm, CloudEvent(type="lead.created", source="t", data={"x": 1})) == set()
    async with engine.begin() as tx:
        assert await cm.consume_batch(tx, [CloudEvent(type="lead.created", source="t", data={})]) == set()


async def test_version_guard_raises_when_the_row_was_changed_unlocked(engine, cm, monkeypatch):
    await consume(engine, cm, customer_event("c1", {"tier": "silver"}))
    real_locked = cm._locked

    async def unlocked_writer(tx, customer_id, now):
        # Something that ignored the lock changed the profile after this consumer read it.
        loaded = await real_locked(tx, customer_id, now)
        await tx.execute(update(cm_profiles).where(cm_profiles.c.customer_id == customer_id)
                         .values(version=cm_profiles.c.version + 1))
        return loaded

    monkeypatch.setattr(cm, "_locked", unlocked_writer)
    with pytest.raises(ConcurrentUpdate):
        async with engine.begin() as tx:
            await cm.consume(tx, cloud(contact(ContactEventType.BANNER_CLICK, topic="travel")))
    monkeypatch.undo()
    # The whole transaction rolled back: a retry applies the event once.
    event = cloud(contact(ContactEventType.BANNER_CLICK, topic="travel"))
    assert await consume(engine, cm, event) == {"c1"}
    async with engine.connect() as conn:
        row = (await conn.execute(select(cm_profiles))).one()
    assert row.version == 2 and row.state["counters"]["BANNER_CLICK:travel"] == {"2026-03-10": 1}


async def test_duplicate_event_is_not_applied_twice(engine, cm):
    e = cloud(contact(ContactEventType.PROPOSITION_SHOWN, offer_id="app-download"))
    assert await consume(engine, cm, e) == {"c1"}
    assert await consume(engine, cm, e) == set()
    assert (await cm.fetch(["c1"]))["c1"]["offerHistory"][0]["shown"] == 1


async def test_broken_catalog_fails_start(engine, tmp_path):
    (tmp_path / "cm").mkdir()
    (tmp_path / "cm/offers.yaml").write_text("offers:\n  - id: x\n    title: X\n    channels: [FAX]\n")
    (tmp_path / "cm/segments.yaml").write_text("segments: []\n")
    adapter = BuiltinCM(AdapterContext("cm", Settings(mappings_dir=tmp_path), engine))
    with pytest.raises(MappingError) as info:
        await adapter.start()
    assert f"{tmp_path / 'cm/offers.yaml'}:4:16: offers[0].channels[0]" in str(info.value)
    assert not (await adapter.check()).ok


async def test_learning_is_cached_briefly(engine):
    ctx = AdapterContext(system="cm", settings=Settings(), engine=engine)
    cm = BuiltinCM(ctx, clock=lambda: NOW)
    await cm.start()
    base = await decide(cm, "c1", Channel.EMAIL, 10)
    async with engine.begin() as tx:
        await tx.execute(cm_offer_learning.insert().values(offer_id="app-download", shown=10, accepted=10))
    assert await decide(cm, "c1", Channel.EMAIL, 10) == base  # within the 1 s cache
    cm._learning_at -= 2  # let the cache expire
    assert await decide(cm, "c1", Channel.EMAIL, 10) != base


async def test_naive_timestamps_are_utc(engine, cm):
    data = contact_event_data(contact(ContactEventType.PROPOSITION_SHOWN, offer_id="app-download")).to_data()
    data["occurredAt"] = (NOW - timedelta(hours=1)).replace(tzinfo=None).isoformat()
    await consume(engine, cm, CloudEvent(type="contact.proposition.shown", source="t", data=data))
    assert (await cm.fetch(["c1"]))["c1"]["offerHistory"][0]["lastShownAt"] == NOW - timedelta(hours=1)


@pytest.mark.postgres
async def test_two_processes_consume_concurrently_on_postgres(postgres_url):
    """Two hub processes (two engines) apply events of one customer at once: the profile row lock
    queues them up, so none fails and none is lost."""
    engines = [create_engine(postgres_url) for _ in range(2)]
    try:
        async with engines[0].begin() as conn:
            await conn.run_sync(metadata.create_all)
        adapters = []
        for engine in engines:
            adapter = BuiltinCM(AdapterContext("cm", Settings(), engine), clock=lambda: NOW)
            await adapter.start()
            adapters.append(adapter)

        async def deliver(adapter: BuiltinCM, engine, event: CloudEvent) -> None:
            async with engine.begin() as tx:
                await adapter.consume(tx, event)

        events = [cloud(contact(ContactEventType.PROPOSITION_SHOWN, customer="pg1", offer_id="app-download",
                                at=NOW - timedelta(minutes=i))) for i in range(30)]
        await asyncio.gather(*(deliver(adapters[i % 2], engines[i % 2], e) for i, e in enumerate(events)))

        profile = (await adapters[0].fetch(["pg1"]))["pg1"]
        assert profile["offerHistory"][0]["shown"] == 30
        async with engines[0].connect() as conn:
            row = (await conn.execute(select(cm_profiles.c.version))).scalar_one()
            learned = (await conn.execute(select(cm_offer_learning.c.shown))).scalar_one()
        assert row == 30 and learned == 30
    finally:
        for engine in engines:
            await engine.dispose()


# --- request.status, on SQLite and PostgreSQL -------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request, tmp_path) -> AsyncIterator[AsyncEngine]:
    """A migrated store: a SQLite file, or a fresh PostgreSQL database."""
    from hub.registry import installed_components
    from hub.store.db import migrate

    async def migrated(url: str) -> AsyncEngine:
        engine = create_engine(url)
        await migrate(engine, installed_components())
        return engine

    if request.param == "sqlite":
        engine = await migrated(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
        yield engine
        await engine.dispose()
        return
    async with fresh_postgres_database() as url:
        engine = await migrated(url)
        yield engine
        await engine.dispose()


@pytest.fixture
async def cm_db(db) -> AsyncIterator[BuiltinCM]:
    adapter = BuiltinCM(AdapterContext(system="cm", settings=Settings(), engine=db), clock=lambda: NOW)
    await adapter.start()
    yield adapter
    await adapter.close()


def request_status(customer: str, request_id: str, status: RequestStatus, at: datetime,
                   kind: RequestKind = RequestKind.COMPLAINT) -> CloudEvent:
    """As the CRM sends it: subject = the customer, correlationid = the request."""
    data = RequestStatusData(requestId=request_id, customerId=customer, kind=kind, status=status, at=at,
                             note=None)
    return make(REQUEST_STATUS, data, source="test", subject=customer, correlationid=request_id,
                id=f"ev{next(_ids)}")


def mixed_events() -> list[CloudEvent]:
    day, hour = timedelta(days=1), timedelta(hours=1)
    first = request_status("c1", "r1", RequestStatus.OPEN, NOW - 3 * day)
    events = [
        customer_event("c1", {"tier": "gold"}),
        first,
        cloud(contact(ContactEventType.INTEREST_SHOWN, customer="c1", topic="mortgage")),
        request_status("c1", "r1", RequestStatus.COMPLETED, NOW - day),
        request_status("c1", "r1", RequestStatus.IN_PROGRESS, NOW - 2 * day),  # late: ignored
        request_status("c2", "q1", RequestStatus.OPEN, NOW - 5 * hour, RequestKind.QUOTE),
        request_status("c2", "r2", RequestStatus.WAITING_FOR_CUSTOMER, NOW - 4 * hour),
        first,  # redelivered
    ]
    # 55 requests of one customer, newest first: the 5 oldest are never kept.
    events += [request_status("c3", f"x{i:02}", RequestStatus.OPEN, NOW - timedelta(minutes=i)) for i in range(55)]
    return events


async def profiles(engine: AsyncEngine) -> dict[str, tuple[int, dict]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(cm_profiles.c.customer_id, cm_profiles.c.version, cm_profiles.c.state)))
        return {r.customer_id: (r.version, r.state) for r in rows}


async def forget(engine: AsyncEngine) -> None:
    async with engine.begin() as tx:
        await tx.execute(delete(cm_profiles))
        await tx.execute(delete(cm_offer_learning))


async def test_consume_and_consume_batch_keep_the_same_request_statuses(db, cm_db):
    events = mixed_events()
    one_by_one: set[str] = set()
    async with db.begin() as tx:
        for e in events:
            one_by_one |= await cm_db.consume(tx, e)
    expected = await profiles(db)
    assert one_by_one == {"c1", "c2", "c3"}

    # What CM keeps: the newest status per request, the newest 50 requests, a version per change.
    version, state = expected["c1"]
    assert state["requests"] == {"r1": {"kind": "COMPLAINT", "status": "COMPLETED",
                                        "at": (NOW - timedelta(days=1)).isoformat()}}
    assert version == state["version"] == 4  # attributes, r1 OPEN, the interest, r1 COMPLETED
    version, state = expected["c2"]
    assert {k: v["status"] for k, v in state["requests"].items()} == {"q1": "OPEN", "r2": "WAITING_FOR_CUSTOMER"}
    assert state["requests"]["q1"]["kind"] == "QUOTE" and version == 2
    version, state = expected["c3"]
    assert sorted(state["requests"]) == [f"x{i:02}" for i in range(50)] and version == 50

    for size in (len(events), 4, 1):  # one batch for the lot, several, one event each
        await forget(db)
        batched: set[str] = set()
        for start in range(0, len(events), size):
            async with db.begin() as tx:
                batched |= await cm_db.consume_batch(tx, events[start:start + size])
        assert batched == one_by_one, size
        assert await profiles(db) == expected, size


async def test_the_same_request_status_twice_changes_nothing(db, cm_db):
    opened = request_status("c1", "r1", RequestStatus.OPEN, NOW - timedelta(hours=2))
    assert await consume(db, cm_db, opened) == {"c1"}
    assert await consume(db, cm_db, opened) == set()
    async with db.begin() as tx:
        assert await cm_db.consume_batch(tx, [opened, opened]) == set()
    assert (await profiles(db))["c1"][0] == 1
    # Newer wins, older is ignored, in one batch whatever the order.
    newer = request_status("c1", "r1", RequestStatus.IN_PROGRESS, NOW - timedelta(hours=1))
    older = request_status("c1", "r1", RequestStatus.CANCELLED, NOW - timedelta(hours=3))
    async with db.begin() as tx:
        assert await cm_db.consume_batch(tx, [newer, older]) == {"c1"}
    assert await consume(db, cm_db, older) == set()
    assert await consume(db, cm_db, newer) == set()
    version, state = (await profiles(db))["c1"]
    assert version == 2 and state["requests"]["r1"]["status"] == "IN_PROGRESS"


async def test_an_open_complaint_is_a_segment(db, cm_db):
    await consume(db, cm_db, request_status("c1", "r1", RequestStatus.OPEN, NOW - timedelta(days=1)))
    assert "open-complaint" in {s["id"] for s in (await cm_db.fetch(["c1"]))["c1"]["segments"]}
    await consume(db, cm_db, request_status("c1", "r1", RequestStatus.COMPLETED, NOW))
    assert "open-complaint" not in {s["id"] for s in (await cm_db.fetch(["c1"]))["c1"]["segments"]}
    # A status is not an attribute or an offer: the rest of the profile is untouched.
    profile = (await cm_db.fetch(["c1"]))["c1"]
    assert profile["attributes"] == {} and profile["offerHistory"] == []


async def test_a_malformed_request_status_in_a_batch_is_permanent_and_writes_nothing(db, cm_db):
    good = request_status("c1", "r1", RequestStatus.OPEN, NOW)
    bad = CloudEvent(type=REQUEST_STATUS, source="t", data={**good.data, "kind": "PRAISE"})
    with pytest.raises(PermanentError) as info:
        async with db.begin() as tx:
            await cm_db.consume_batch(tx, [good, bad])
    assert bad.id in str(info.value) and "data.kind" in str(info.value)
    assert await profiles(db) == {}
