"""Batch flows accumulate durably and are delivered at their time; switching mode loses and doubles nothing."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from hub.api.app import create_app
from hub.config import SHIPPED_MAPPINGS
from hub.runtime import Hub
from tests.conftest import drop_namespace
from tests.support import CUSTOMER, RECORD, gql, start_contact


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
