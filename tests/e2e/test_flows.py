"""Batch flows accumulate durably and are delivered at their time; switching mode loses and doubles nothing."""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select

from hub.api.app import create_app
from hub.config import SHIPPED_MAPPINGS, Settings
from hub.runtime import Hub
from tests.conftest import drop_namespace
from tests.support import CUSTOMER, RECORD, eventually, gql, start_contact


def with_mode(tmp_path, mode: str):
    target = tmp_path / f"mappings-{mode}"
    if not target.exists():
        shutil.copytree(SHIPPED_MAPPINGS, target)
    hub_yaml = target / "hub.yaml"
    text = hub_yaml.read_text()
    first_flow = text.index("  - name: contact-events-to-cm")
    head, tail = text[:first_flow], text[first_flow:]
    tail = tail.replace("    mode: realtime\n", f"    mode: {mode}\n    at: \"02:00\"\n", 1)
    hub_yaml.write_text(head + tail)
    return target


@pytest.fixture
async def running(hub_settings):
    """Start hubs on the same store and broker, one after another, like restarts with a new config."""
    hubs: list[Hub] = []

    async def start(mappings_dir) -> tuple[Hub, httpx.AsyncClient]:
        hub = Hub(hub_settings.model_copy(update={"mappings_dir": mappings_dir}))
        await hub.start()
        hubs.append(hub)
        return hub, httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(hub=hub)), base_url="http://t")

    yield start
    for h in hubs:
        await h.close()
    await drop_namespace(hub_settings, {f.queue for h in hubs for f in h.mapping.flows})


async def shown(client, customer_id) -> dict[str, int]:
    data = await gql(client, CUSTOMER, {"id": customer_id})
    return {h["offerId"]: h["shown"] for h in data["customer"]["offerHistory"]}


async def test_daily_flow_waits_for_its_time_then_switch_to_realtime(tmp_path, running):
    hub, client = await running(with_mode(tmp_path, "daily"))
    start = await start_contact(client, email="batch@example.com")
    offer = start["nextBestActions"][0]["offerId"]
    contact, customer = start["contact"]["id"], start["customer"]["id"]
    await gql(client, RECORD, {"contactId": contact, "events": [{"type": "PROPOSITION_SHOWN", "offerId": offer}]})
    await hub.settle()
    assert await shown(client, customer) == {}, "a daily flow does not deliver before its time"
    depth = {q.queue: q.depth for q in await hub.bus.stats()}
    assert depth["flow.contact-events-to-cm"] == 1

    # Its time comes (the scheduler's clock says tomorrow 03:00): delivered once, by one claim.
    flow = hub.flow("contact-events-to-cm")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=3, minute=0)
    hub.scheduler._clock = lambda: tomorrow
    # (the shipped request-status flow is daily too: due as well, with nothing waiting)
    assert (await hub.scheduler.run_due()) == {"contact-events-to-cm": 1, "request-status-to-cm": 0}
    assert (await hub.scheduler.run_due()) == {}, "the same due time is not run twice"
    hub.cache.invalidate([customer], ["cm"])
    assert await shown(client, customer) == {offer: 1}

    # Two more events wait in the daily queue; then the architect switches the flow to realtime.
    await gql(client, RECORD, {"contactId": contact, "events": [{"type": "PROPOSITION_SHOWN", "offerId": offer}] * 2})
    await hub.settle()
    assert (await hub.bus.stats()) and flow.queue in {q.queue for q in await hub.bus.stats()}
    await hub.close()

    hub, client = await running(with_mode(tmp_path, "realtime"))
    await hub.settle()
    assert await shown(client, customer) == {offer: 3}, "nothing lost, nothing doubled"


async def test_a_batch_flow_takes_its_events_in_packs(tmp_path, running):
    hub, client = await running(with_mode(tmp_path, "daily"))
    start = await start_contact(client, email="packs@example.com")
    offer = start["nextBestActions"][0]["offerId"]
    contact, customer = start["contact"]["id"], start["customer"]["id"]
    shown_once = {"type": "PROPOSITION_SHOWN", "offerId": offer}
    await gql(client, RECORD, {"contactId": contact, "events": [shown_once] * 25})  # one transaction
    await hub.settle()
    depth = {q.queue: q.depth for q in await hub.bus.stats()}
    assert depth["flow.contact-events-to-cm"] == 1, "25 events of one relay round are one message"
    assert await hub.scheduler.deliver(hub.flow("contact-events-to-cm")) == 25
    hub.cache.invalidate([customer], ["cm"])
    assert await shown(client, customer) == {offer: 25}


# --- The contract: a batch run delivers everything since the last run exactly once; a run that
# outlives its interval never overlaps the next; a run cut by a crash resumes without loss or doubles
# (tests/faults/test_flow_crash.py, test_flow_overlap.py); all while the mode moves weekly -> daily ->
# realtime and back. These run on both stacks (they use `hub_settings`).

FLOW = "contact-events-to-cm"
SCHEDULES = {
    "realtime": "    mode: realtime\n",
    "daily": '    mode: daily\n    at: "02:00"\n',
    "weekly": '    mode: weekly\n    at: "02:00"\n    weekday: monday\n',
}
EFFECTS = Table(
    "test_flow_effects",
    MetaData(),
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
)


def set_mode(mappings_dir: Path, mode: str, weekday: str = "monday") -> None:
    """Rewrite the mapping's contact-events flow (a copy of the shipped hub.yaml) to `mode`."""
    text = (SHIPPED_MAPPINGS / "hub.yaml").read_text()
    first_flow = text.index(f"  - name: {FLOW}")
    head, tail = text[:first_flow], text[first_flow:]
    assert tail.count(SCHEDULES["realtime"]) >= 1
    schedule = SCHEDULES[mode].replace("monday", weekday)
    (mappings_dir / "hub.yaml").write_text(head + tail.replace(SCHEDULES["realtime"], schedule, 1))


class Clock:
    """The scheduler's clock, moved by the test: `at(days)` is 03:00 UTC that many days after the start."""

    def __init__(self) -> None:
        self.start = self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def at(self, days: int, hour: int = 3, minute: int = 0) -> datetime:
        self.now = (self.start + timedelta(days=days)).replace(hour=hour, minute=minute, second=0, microsecond=0)
        return self.now


class Journal:
    """Every contact event CM applied, noted in the transaction that applies it: a rolled-back attempt
    leaves nothing, an event applied twice (past the hub's idempotent consumer) is there twice. While
    `failing` names events, CM raises on them (and on a batch holding one), as a destination failing
    mid-batch does."""

    def __init__(self) -> None:
        self.failing: set[str] = set()

    async def create(self, engine) -> None:
        async with engine.begin() as conn:
            await conn.run_sync(EFFECTS.metadata.create_all)

    async def note(self, tx, events) -> None:
        contact = [{"event_id": e.id} for e in events if e.type.startswith("contact.")]
        if contact:
            await tx.execute(EFFECTS.insert(), contact)

    def check(self, events) -> None:
        bad = [e.id for e in events if e.id in self.failing]
        if bad:
            raise RuntimeError(f"test: CM fails on {bad[0]}")

    async def applied(self, engine) -> Counter[str]:
        async with engine.connect() as conn:
            return Counter((await conn.execute(select(EFFECTS.c.event_id))).scalars())


@pytest.fixture
def journal(monkeypatch) -> Journal:
    """Observes every CM instance, those a reload builds too."""
    from hub_adapters.cm import BuiltinCM

    j = Journal()
    one, many = BuiltinCM.consume, BuiltinCM.consume_batch

    async def consume(self, tx, event):
        j.check([event])
        changed = await one(self, tx, event)
        await j.note(tx, [event])
        return changed

    async def consume_batch(self, tx, events):
        j.check(events)
        changed = await many(self, tx, events)
        await j.note(tx, events)
        return changed

    monkeypatch.setattr(BuiltinCM, "consume", consume)
    monkeypatch.setattr(BuiltinCM, "consume_batch", consume_batch)
    return j


class GatedHub(Hub):
    """A hub whose contact-events flow waits at `gate` (when one is set) before it applies anything,
    after letting `passes` deliveries through: a run that takes as long as the test wants. `entered` is
    set when a delivery waits there."""

    gate: asyncio.Event | None = None
    passes = 0

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.entered = asyncio.Event()

    async def wait_at_gate(self) -> None:
        if self.gate is None or self.gate.is_set():
            return
        if self.passes > 0:
            self.passes -= 1
            return
        self.entered.set()
        await self.gate.wait()

    def handler_for(self, flow):
        inner = super().handler_for(flow)
        return Gated(self, inner) if flow.name == FLOW else inner


class Gated:
    def __init__(self, hub: GatedHub, inner) -> None:
        self._hub, self._inner = hub, inner

    async def __call__(self, event) -> None:
        await self._hub.wait_at_gate()
        await self._inner(event)

    async def batch(self, events) -> None:
        await self._hub.wait_at_gate()
        await self._inner.batch(events)


@dataclass
class FlowHubs:
    """Hubs on this test's stack, on a copy of the shipped mapping the test rewrites, each driven by
    hand: its scheduler's own rounds stopped, its clock the test's."""

    settings: Settings
    mappings: Path
    clock: Clock
    hubs: list[Hub]

    async def start(
        self, mode: str | None = None, *, weekday: str = "monday", consume: bool = True, **overrides: Any
    ) -> GatedHub:
        if mode is not None:
            set_mode(self.mappings, mode, weekday)
        hub = GatedHub(self.settings.model_copy(update={"mappings_dir": self.mappings, **overrides}))
        first = not self.hubs
        self.hubs.append(hub)
        await hub.start(consume=consume)
        await hub.scheduler.stop()
        hub.scheduler._clock = self.clock
        if first:  # the schedules start now (the first round would do it): the first runs are tomorrow's
            assert await hub.scheduler.run_due() == {}, "nothing is due at the start"
        return hub


@pytest.fixture
async def flow_hubs(tmp_path, hub_settings, journal):
    mappings = tmp_path / "mappings"
    shutil.copytree(SHIPPED_MAPPINGS, mappings)
    made = FlowHubs(hub_settings, mappings, Clock(), [])
    yield made
    for h in reversed(made.hubs):
        await h.close()
    await drop_namespace(hub_settings, {f.queue for h in made.hubs for f in h.mapping.flows})


def api_of(hub: Hub) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(hub=hub)), base_url="http://t")


class Recorder:
    """A channel recording events, one call after another, until stopped: four PROPOSITION_SHOWN, then
    a PROPOSITION_RESPONSE LATER (a `contact.response`, which the realtime flow sales-to-crm takes too:
    on the events exchange on its own, it also reaches the contact-events queue while that keeps the
    bindings of its realtime days)."""

    def __init__(self, client: httpx.AsyncClient, contact: str, offer: str) -> None:
        self.client, self.contact, self.offer = client, contact, offer
        self.shown: list[str] = []
        self.later: list[str] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def accepted(self) -> list[str]:
        return self.shown + self.later

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        calls = 0
        while not self._stop.is_set():
            calls += 1
            later = calls % 5 == 0
            event = {"type": "PROPOSITION_RESPONSE", "offerId": self.offer, "response": "LATER"} if later else {
                "type": "PROPOSITION_SHOWN", "offerId": self.offer}
            data = await gql(self.client, RECORD, {"contactId": self.contact, "events": [event]})
            (self.later if later else self.shown).extend(data["recordContactEvents"]["eventIds"])
            await asyncio.sleep(0.005)

    async def until(self, count: int) -> None:
        """Wait until `count` more events were accepted."""
        target = len(self.accepted) + count
        await eventually(lambda: len(self.accepted) >= target or self._task.done(), timeout=30)
        if self._task.done():
            self._task.result()

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 30)


async def history(client, customer_id) -> dict[str, int]:
    data = await gql(client, CUSTOMER, {"id": customer_id})
    return next(({"shown": h["shown"], "later": h["later"]} for h in data["customer"]["offerHistory"]), {})


async def test_events_in_flight_while_the_mode_moves_weekly_daily_realtime_daily_weekly(flow_hubs, journal):
    clock = flow_hubs.clock
    hub = await flow_hubs.start("weekly")
    await journal.create(hub.engine)
    async with api_of(hub) as client:
        start = await start_contact(client, email="switching@example.com")
        customer = start["customer"]["id"]
        recorder = Recorder(client, start["contact"]["id"], start["nextBestActions"][0]["offerId"])
        recorder.start()
        try:
            # Weekly: the events wait in the flow's queue.
            await recorder.until(10)
            assert await hub.scheduler.run_due() == {}, "not yet"
            await eventually(lambda: _pending(client), timeout=10)
            assert not await journal.applied(hub.engine), "a weekly flow does not deliver before its time"

            # Daily: tomorrow at 03:00 its run is due, with events still being recorded (a new schedule's
            # first run is its next due time, however long ago the weekly schedule started).
            set_mode(flow_hubs.mappings, "daily")
            assert await hub.reload() is True
            assert FLOW not in await hub.scheduler.run_due()
            await recorder.until(10)
            clock.at(1)
            assert (await hub.scheduler.run_due()).get(FLOW, 0) > 0
            assert FLOW not in await hub.scheduler.run_due(), "the same due time is not run twice"
            assert await journal.applied(hub.engine)

            # Realtime: what waits is delivered at once, and what comes next as it comes.
            await recorder.until(10)
            set_mode(flow_hubs.mappings, "realtime")
            assert await hub.reload() is True
            await recorder.until(10)
            seen = set(recorder.accepted)
            await eventually(lambda: _applied_all(journal, hub, seen), timeout=20)

            # Daily again: the events wait for the next day's run.
            set_mode(flow_hubs.mappings, "daily")
            assert await hub.reload() is True
            await recorder.until(10)
            clock.at(2)
            assert (await hub.scheduler.run_due()).get(FLOW, 0) > 0

            # Weekly again: no run is due until the next monday.
            set_mode(flow_hubs.mappings, "weekly")
            assert await hub.reload() is True
            await recorder.until(10)
            assert FLOW not in await hub.scheduler.run_due()
        finally:
            await recorder.stop()
        await hub.settle(timeout=20)
        clock.at(9)  # a monday 02:00 lies between day 3 and day 9
        assert (await hub.scheduler.run_due()).get(FLOW, 0) > 0
        assert FLOW not in await hub.scheduler.run_due()

        # Every event applied by CM exactly once: nothing lost, nothing doubled.
        applied = await journal.applied(hub.engine)
        assert len(recorder.accepted) == len(set(recorder.accepted)) >= 60
        assert {e for e, n in applied.items() if n > 1} == set(), "applied twice"
        assert set(recorder.accepted) - set(applied) == set(), "lost"
        assert set(applied) == set(recorder.accepted)
        hub.cache.invalidate([customer], ["cm"])
        assert await history(client, customer) == {"shown": len(recorder.shown), "later": len(recorder.later)}
        listed = await _flow(client)
        assert listed["mode"] == "WEEKLY" and listed["pending"] == 0
        assert datetime.fromisoformat(listed["lastRunAt"]) == clock.now
    assert await hub.bus.dead_letters() == []


async def test_a_schedule_a_reload_sets_runs_first_at_its_next_due_time(flow_hubs, journal):
    """Weekly (on tomorrow's weekday: its schedule started six days ago) to daily: the daily schedule
    starts at the switch, so its first run is the next 02:00, not at once."""
    clock = flow_hubs.clock
    tomorrow = (clock.now + timedelta(days=1)).strftime("%A").lower()
    hub = await flow_hubs.start("weekly", weekday=tomorrow)
    await journal.create(hub.engine)
    async with api_of(hub) as client:
        contact, _, offer = await _person(client, "rescheduled@example.com")
        ids = await _record(client, contact, offer, calls=1, per_call=3)
        await hub.settle()
        set_mode(flow_hubs.mappings, "daily")
        assert await hub.reload() is True
        next_run = clock.start.replace(hour=2, minute=0, second=0, microsecond=0)
        next_run += timedelta(days=1) if next_run <= clock.start else timedelta()
        assert datetime.fromisoformat((await _flow(client))["nextRunAt"]) == next_run
        assert FLOW not in await hub.scheduler.run_due()
        assert datetime.fromisoformat((await _flow(client))["nextRunAt"]) == next_run
        clock.at(1)
        assert (await hub.scheduler.run_due())[FLOW] == len(ids)
        assert await journal.applied(hub.engine) == Counter(ids)


async def test_a_run_that_outlives_its_interval_never_overlaps_the_next(flow_hubs, journal):
    clock = flow_hubs.clock
    hub = await flow_hubs.start("daily")
    await journal.create(hub.engine)
    async with api_of(hub) as client:
        contact, customer, offer = await _person(client, "overrun@example.com")
        first = await _record(client, contact, offer, calls=3, per_call=4)
        await hub.settle()

        # Tomorrow's run starts, and takes longer than a day: it waits in the destination.
        hub.gate = asyncio.Event()
        clock.at(1)
        running = asyncio.create_task(hub.scheduler.run_due())
        await asyncio.wait_for(hub.entered.wait(), 10)
        second = await _record(client, contact, offer, calls=1, per_call=4)
        await hub.settle()
        clock.at(2)  # the next day's due time has come; the first run still runs
        assert FLOW not in await asyncio.wait_for(hub.scheduler.run_due(), 10), "no overlap"
        listed = await _flow(client)
        assert listed["lastRunAt"] is None, "no run completed yet"
        assert datetime.fromisoformat(listed["nextRunAt"]) == clock.at(2, hour=2), "overdue: runs next"
        clock.at(2)
        assert not await journal.applied(hub.engine)

        hub.gate.set()
        assert (await asyncio.wait_for(running, 20))[FLOW] == len(first)
        assert set(await journal.applied(hub.engine)) == set(first)
        # The next day's run follows the first, once.
        assert (await hub.scheduler.run_due())[FLOW] == len(second)
        assert FLOW not in await hub.scheduler.run_due()
        applied = await journal.applied(hub.engine)
        assert applied == Counter(first + second), "each event applied once"
        hub.cache.invalidate([customer], ["cm"])
        assert (await history(client, customer))["shown"] == len(first + second)
        assert datetime.fromisoformat((await _flow(client))["lastRunAt"]) == clock.now


async def test_a_run_in_progress_when_its_flow_turns_realtime_ends_and_nothing_is_doubled(flow_hubs, journal):
    clock = flow_hubs.clock
    hub = await flow_hubs.start("daily")
    await journal.create(hub.engine)
    async with api_of(hub) as client:
        contact, customer, offer = await _person(client, "turning@example.com")
        waiting = await _record(client, contact, offer, calls=2, per_call=4)
        await hub.settle()
        hub.gate = asyncio.Event()
        clock.at(1)
        running = asyncio.create_task(hub.scheduler.run_due())
        await asyncio.wait_for(hub.entered.wait(), 10)

        # The architect switches the flow to realtime while its run still delivers: the flow's queue now
        # has a consumer as well, and new events come as they happen.
        set_mode(flow_hubs.mappings, "realtime")
        assert await hub.reload() is True
        live = await _record(client, contact, offer, calls=1, per_call=4)
        hub.gate.set()
        await asyncio.wait_for(running, 20)
        await hub.settle(timeout=20)
        assert await journal.applied(hub.engine) == Counter(waiting + live), "each event applied once"
        hub.cache.invalidate([customer], ["cm"])
        assert (await history(client, customer))["shown"] == len(waiting + live)
        assert (await _flow(client))["pending"] == 0


async def test_events_being_applied_when_the_flow_turns_daily_wait_for_its_run(flow_hubs, journal):
    clock = flow_hubs.clock
    hub = await flow_hubs.start("realtime")
    await journal.create(hub.engine)
    async with api_of(hub) as client:
        contact, customer, offer = await _person(client, "pausing@example.com")
        hub.gate = asyncio.Event()
        caught = await _record(client, contact, offer, calls=1, per_call=4)
        await asyncio.wait_for(hub.entered.wait(), 10)  # the realtime consumer holds them, unapplied

        # Switched to daily: the consumer stops in the middle of its delivery; what it held waits in the
        # queue with what comes next, until the next run.
        set_mode(flow_hubs.mappings, "daily")
        assert await hub.reload() is True
        hub.gate.set()
        assert FLOW not in await hub.scheduler.run_due(), "its first run is the next due time"
        later = await _record(client, contact, offer, calls=1, per_call=4)
        await hub.settle()
        assert not await journal.applied(hub.engine), "a daily flow waits for its time"
        assert await _pending(client) >= 1
        clock.at(1)
        assert (await hub.scheduler.run_due())[FLOW] >= len(caught + later)
        assert await journal.applied(hub.engine) == Counter(caught + later), "each event applied once"
        hub.cache.invalidate([customer], ["cm"])
        assert (await history(client, customer))["shown"] == len(caught + later)
        assert await _pending(client) == 0


async def _pending(client) -> int:
    return (await _flow(client))["pending"]


async def _flow(client) -> dict:
    data = await gql(client, "{ flows { name mode pending lastRunAt nextRunAt } }")
    return next(f for f in data["flows"] if f["name"] == FLOW)


async def _applied_all(journal: Journal, hub: Hub, ids: set[str]) -> bool:
    return ids <= set(await journal.applied(hub.engine))


async def _person(client, email: str) -> tuple[str, str, str]:
    start = await start_contact(client, email=email)
    return start["contact"]["id"], start["customer"]["id"], start["nextBestActions"][0]["offerId"]


async def _record(client, contact: str, offer: str, *, calls: int, per_call: int) -> list[str]:
    ids: list[str] = []
    for _ in range(calls):
        events = [{"type": "PROPOSITION_SHOWN", "offerId": offer}] * per_call
        ids += (await gql(client, RECORD, {"contactId": contact, "events": events}))["recordContactEvents"]["eventIds"]
    return ids
