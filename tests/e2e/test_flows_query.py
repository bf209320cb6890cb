"""The `flows` query: the mapping's flows with their modes and schedules, what waits for each destination,
and when a batch flow last ran and runs next. Runs on both stacks (it uses `hub_settings`)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from hub.api.app import create_app
from hub.config import SHIPPED_MAPPINGS
from hub.events import REQUEST_STATUS, RequestStatusData, make
from hub.messaging.bus.base import BusUnavailable
from hub.runtime import Hub
from tests.conftest import drop_namespace
from tests.support import gql, start_contact

FLOWS = "{ flows { name source destination events mode schedule pending lastRunAt nextRunAt } }"


async def flows(client) -> dict[str, dict]:
    return {f["name"]: f for f in (await gql(client, FLOWS))["flows"]}


def at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def next_two_oclock(now: datetime) -> datetime:
    due = now.replace(hour=2, minute=0, second=0, microsecond=0)
    return due if due > now else due + timedelta(days=1)


async def test_the_mapping_flows_are_listed_with_their_modes_and_schedules(hub, client):
    before = datetime.now(UTC)
    data = await gql(client, FLOWS)
    after = datetime.now(UTC)
    assert [f["name"] for f in data["flows"]] == [f.name for f in hub.mapping.flows], "mapping order"
    listed = {f["name"]: f for f in data["flows"]}

    events = listed["contact-events-to-cm"]
    assert {k: events[k] for k in ("source", "destination", "mode", "schedule", "lastRunAt", "nextRunAt")} == {
        "source": "hub", "destination": "cm", "mode": "REALTIME", "schedule": "realtime",
        "lastRunAt": None, "nextRunAt": None,
    }
    assert events["events"] == [
        "contact.proposition.shown", "contact.response", "contact.interest.shown", "contact.banner.click",
    ]
    assert isinstance(events["pending"], int), "a realtime flow's queue is counted too"
    assert listed["customers-to-cm"]["events"] == ["customer.*"]
    assert listed["customers-to-cm"]["mode"] == "REALTIME"

    status = listed["request-status-to-cm"]
    assert {k: status[k] for k in ("source", "destination", "events", "mode", "schedule", "pending")} == {
        "source": "crm", "destination": "cm", "events": ["request.status"], "mode": "DAILY",
        "schedule": "daily at 02:00 UTC", "pending": 0,
    }
    assert status["lastRunAt"] is None, "the schedule started at this hub's start: it never ran"
    assert at(status["nextRunAt"]) in {next_two_oclock(before), next_two_oclock(after)}


async def test_pending_counts_what_waits_for_a_daily_flow_and_a_run_sets_its_times(hub, client):
    # Drive the scheduler by hand: its own rounds stop, after one round has started the schedules.
    await hub.scheduler.stop()
    assert await hub.scheduler.run_due() == {}, "nothing is due at the start"
    customer = (await start_contact(client, email="flows@example.com"))["customer"]["id"]

    # The CRM reports a request's status (its outbox, as the CRM's own writes do): it waits in the daily queue.
    now = datetime.now(UTC)
    status = make(
        REQUEST_STATUS,
        RequestStatusData(requestId="REQ-1", customerId=customer, kind="SERVICE", status="OPEN", at=now),
        source="crm", subject=customer, correlationid="REQ-1",
    )
    async with hub.engine.begin() as tx:
        await hub.outbox.add(tx, [status])
    hub.relay.wake()
    await hub.settle()
    waiting = (await flows(client))["request-status-to-cm"]
    assert waiting["pending"] == 1
    assert waiting["lastRunAt"] is None
    assert at(waiting["nextRunAt"]) == next_two_oclock(now)

    # Its time comes (the scheduler's clock says tomorrow 03:00): the run empties the queue.
    tomorrow = (now + timedelta(days=1)).replace(hour=3, minute=0, second=0, microsecond=0)
    hub.scheduler._clock = lambda: tomorrow
    assert (await hub.scheduler.run_due())["request-status-to-cm"] == 1
    ran = (await flows(client))["request-status-to-cm"]
    assert ran["pending"] == 0
    assert at(ran["lastRunAt"]) == tomorrow
    assert at(ran["nextRunAt"]) == tomorrow.replace(hour=2) + timedelta(days=1)

    # The hub was down over the next due time: the run is overdue, due at the scheduler's next round.
    later = tomorrow + timedelta(days=2)
    hub.scheduler._clock = lambda: later
    overdue = (await flows(client))["request-status-to-cm"]
    assert at(overdue["lastRunAt"]) == tomorrow
    assert at(overdue["nextRunAt"]) == later.replace(hour=2)


async def test_pending_is_null_when_the_broker_cannot_be_asked(hub, client, monkeypatch):
    async def away():
        raise BusUnavailable("the broker is not reachable: test")

    monkeypatch.setattr(hub.bus, "stats", away)
    listed = await flows(client)
    assert {f["pending"] for f in listed.values()} == {None}
    assert listed["request-status-to-cm"]["schedule"] == "daily at 02:00 UTC"
    assert listed["request-status-to-cm"]["nextRunAt"] is not None, "the store's figures still answer"


@pytest.fixture
async def weekly(tmp_path, hub_settings):
    """A hub whose request-status flow runs weekly on Wednesday at 03:30."""
    target = tmp_path / "mappings-weekly"
    shutil.copytree(SHIPPED_MAPPINGS, target)
    hub_yaml = target / "hub.yaml"
    text = hub_yaml.read_text()
    flow = text.index("  - name: request-status-to-cm")
    head, tail = text[:flow], text[flow:]
    assert '    mode: daily\n    at: "02:00"' in tail
    # (hub.config.mapping.Weekday takes the day's number, 0 = monday, though README writes `monday`)
    weekly_at = '    mode: weekly\n    at: "03:30"\n    weekday: wednesday'
    tail = tail.replace('    mode: daily\n    at: "02:00"', weekly_at, 1)
    hub_yaml.write_text(head + tail)
    hub = Hub(hub_settings.model_copy(update={"mappings_dir": target}))
    await hub.start()
    try:
        transport = httpx.ASGITransport(app=create_app(hub=hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield hub, c
    finally:
        await hub.close()
        await drop_namespace(hub_settings, [f.queue for f in hub.mapping.flows])


def next_wednesday_0330(now: datetime) -> datetime:
    due = now.replace(hour=3, minute=30, second=0, microsecond=0)
    due += timedelta(days=(2 - due.weekday()) % 7)
    return due if due > now else due + timedelta(days=7)


async def test_a_weekly_flow_names_its_day(weekly):
    _, client = weekly
    before = datetime.now(UTC)
    listed = (await flows(client))["request-status-to-cm"]
    after = datetime.now(UTC)
    assert listed["mode"] == "WEEKLY"
    assert listed["schedule"] == "weekly on wednesday at 03:30 UTC"
    assert listed["lastRunAt"] is None
    assert at(listed["nextRunAt"]) in {next_wednesday_0330(before), next_wednesday_0330(after)}
