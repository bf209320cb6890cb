"""`hub serve --workers 2`: two hub processes on one port, coordinating through PostgreSQL and RabbitMQ.
Both answer, and events recorded through either are applied once."""

from __future__ import annotations

import httpx
import pytest

from tests.faults.conftest import first_offer, shown_counts, shown_event
from tests.support import RECORD, eventually, gql

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]


async def test_two_workers_share_the_port_and_apply_each_event_once(settings_for, hub_process):
    hub = hub_process(settings_for(), "--workers", "2")
    await hub.wait_ready(timeout=60)

    processes: set[int] = set()

    async def another_connection() -> bool:
        async with httpx.AsyncClient(base_url=hub.url, timeout=10) as fresh:  # a new connection each time
            processes.add((await fresh.get("/healthz")).json()["process"])
        return len(processes) == 2

    await eventually(another_connection, timeout=30, interval=0.05)
    assert hub.proc.pid not in processes  # the workers answer, not the supervisor

    accepted: list[str] = []
    contact_id = customer_id = offer = ""
    for n in range(10):  # a connection each: the calls land on both workers
        async with hub.client() as client:
            if n == 0:
                contact_id, customer_id, offer = await first_offer(client, "workers@example.com")
            data = await gql(client, RECORD, {"contactId": contact_id, "events": [shown_event(offer)] * 2})
            accepted += data["recordContactEvents"]["eventIds"]
    assert len(set(accepted)) == 20

    async def shown() -> bool:
        async with hub.client() as client:
            return (await shown_counts(client, customer_id)).get(offer) == 20

    await eventually(shown, timeout=30, interval=0.2)
    async with hub.client() as client:  # and stays there: nothing is applied twice
        assert (await shown_counts(client, customer_id))[offer] == 20
