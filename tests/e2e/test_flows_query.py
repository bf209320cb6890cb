"""The `flows` query: the mapping's flows with their modes and schedules, what waits for each destination,
and when a batch flow last ran and runs next. Runs on both stacks (it uses `hub_settings`)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import update

from hub.api.app import create_app
from hub.config import SHIPPED_MAPPINGS
from hub.events import REQUEST_STATUS, RequestStatusData, make
from hub.messaging.bus.base import BusUnavailable
from hub.runtime import Hub
from hub.store.tables import flow_cursors
from hub.store.types import UTCDateTime
from tests.conftest import drop_namespace
from tests.support import gql, start_contact

HUB = str(Path(sys.executable).with_name("hub"))
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


async def test_a_run_exactly_at_its_due_time_is_shown_as_a_run(hub, client):
    await hub.scheduler.stop()
    assert await hub.scheduler.run_due() == {}, "nothing is due at the start"
    due = next_two_oclock(datetime.now(UTC))
    hub.scheduler._clock = lambda: due  # the scheduler's round comes at 02:00:00 sharp
    assert (await hub.scheduler.run_due())["request-status-to-cm"] == 0
    ran = (await flows(client))["request-status-to-cm"]
    assert at(ran["lastRunAt"]) == due, "a run on the due time itself is a run"
    assert at(ran["nextRunAt"]) == due + timedelta(days=1)


def cli_env(settings) -> dict[str, str]:
    return {
        **os.environ,
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_BROKER_URL": settings.broker_url,
        "HUB_BUS_NAMESPACE": settings.bus_namespace,
        "HUB_DELIVERY_LIMIT": str(settings.delivery_limit),  # the queues' arguments are the test's
        "HUB_RETRY_BACKOFF_SECONDS": str(settings.retry_backoff_seconds),
    }


async def hub_cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`hub ...` as an operator runs it, on this test's store and broker, beside the test's hub."""
    return await asyncio.to_thread(
        subprocess.run, [HUB, *args], capture_output=True, text=True, timeout=60, env=cli_env(settings)
    )


async def test_hub_flows_run_is_a_run_and_never_overlaps_one(hub, client, hub_settings):
    await hub.scheduler.stop()
    assert await hub.scheduler.run_due() == {}, "the schedules start"
    customer = (await start_contact(client, email="by-hand@example.com"))["customer"]["id"]
    status = make(
        REQUEST_STATUS,
        RequestStatusData(requestId="REQ-9", customerId=customer, kind="QUOTE", status="OPEN", at=datetime.now(UTC)),
        source="crm", subject=customer, correlationid="REQ-9",
    )
    async with hub.engine.begin() as tx:
        await hub.outbox.add(tx, [status])
    hub.relay.wake()
    await hub.settle()
    assert (await flows(client))["request-status-to-cm"]["pending"] == 1

    before = datetime.now(UTC)
    out = await hub_cli(hub_settings, "flows", "run", "request-status-to-cm")
    after = datetime.now(UTC)
    assert out.returncode == 0, out.stderr
    assert "flow request-status-to-cm: delivered 1 events" in out.stdout
    ran = (await flows(client))["request-status-to-cm"]
    assert ran["pending"] == 0
    assert before <= at(ran["lastRunAt"]) <= after, "a run by hand is the flow's last run"
    assert at(ran["nextRunAt"]) in {next_two_oclock(before), next_two_oclock(after)}, "the schedule goes on"

    # A run in progress (here: its lease, as a hub process holds it while it runs) is not overlapped.
    async with hub.engine.begin() as tx:
        await tx.execute(
            update(flow_cursors)
            .where(flow_cursors.c.flow == "request-status-to-cm")
            .values(lease_owner="another-process", lease_until=datetime.now(UTC) + timedelta(minutes=5))
        )
    busy = await hub_cli(hub_settings, "flows", "run", "request-status-to-cm")
    assert busy.returncode == 1
    assert "'request-status-to-cm' is running now" in busy.stderr
    # A realtime flow has no runs.
    realtime = await hub_cli(hub_settings, "flows", "run", "contact-events-to-cm")
    assert realtime.returncode == 2
    assert "realtime" in realtime.stderr


async def test_a_store_from_before_runs_were_recorded_keeps_its_last_runs(hub_settings):
    """Revision 0004 adds the record of runs; a cursor that held a run's start (never on a due time: it
    has seconds or a fraction) becomes the flow's last run, one still on its schedule's start stays none."""
    from alembic import command

    from hub.store.db import HUB_COMPONENT, alembic_config, create_engine, migrate

    def upgrade_to(connection, revision: str) -> None:
        cfg = alembic_config(HUB_COMPONENT)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    engine = create_engine(hub_settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to, "0003")
            old = sa.table("flow_cursors", sa.column("flow"), sa.column("last_run_at", UTCDateTime()),
                           sa.column("delivered"))
            ran = datetime(2026, 11, 20, 2, 0, 7, 123456, tzinfo=UTC)
            await conn.execute(old.insert(), [
                {"flow": "ran", "last_run_at": ran, "delivered": 3},
                {"flow": "never-ran", "last_run_at": datetime(2026, 11, 20, 2, 0, tzinfo=UTC), "delivered": 0},
            ])
        await migrate(engine)
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(flow_cursors))).mappings().all()
        runs = {r["flow"]: (r["last_delivered_at"], r["lease_owner"], r["lease_until"]) for r in rows}
        assert runs == {"ran": (ran, None, None), "never-ran": (None, None, None)}
    finally:
        await engine.dispose()
