"""SIGKILL with events only in the outbox: a real `hub serve` process accepts events over HTTP while
its broker is cut off, and is killed at once. A new hub on the same database and namespace delivers
every accepted event, exactly once."""

from __future__ import annotations

import pytest

from hub.messaging.outbox import Outbox
from hub.store.db import create_engine
from tests.faults.conftest import api, first_offer, shown_counts, shown_event
from tests.support import RECORD, gql

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

K = 12


async def test_events_accepted_before_sigkill_are_all_delivered_by_the_next_hub(
    settings_for, hub_process, start_hub, proxy, rabbitmq_url
):
    settings = settings_for(broker_url=proxy.url(rabbitmq_url))
    process = hub_process(settings)
    await process.wait_ready()
    assert proxy.accepted >= 1, "the hub process reaches the broker through the proxy"

    await proxy.cut()  # from here on nothing can be published
    accepted: list[str] = []
    async with process.client() as client:
        contact_id, customer_id, offer = await first_offer(client, "sigkill@example.com")
        for size in (1, 3, 5, 1, 2):
            data = await gql(client, RECORD, {"contactId": contact_id, "events": [shown_event(offer)] * size})
            assert data["recordContactEvents"]["accepted"] == size
            accepted += data["recordContactEvents"]["eventIds"]
    process.kill()
    assert len(set(accepted)) == K
    assert process.proc.returncode == -9

    # What the killed process left behind: the accepted events, unsent, in its outbox.
    engine = create_engine(settings.database_url)
    try:
        assert await Outbox().backlog(engine) >= K
    finally:
        await engine.dispose()

    proxy.restore()
    hub = await start_hub(settings_for())
    await hub.settle(timeout=20)
    async with api(hub) as client:
        assert (await shown_counts(client, customer_id))[offer] == K
    assert await hub.outbox.backlog(hub.engine) == 0
