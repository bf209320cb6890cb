"""Several hub processes: a change applied in one reaches the caches and NBA subscribers of the others."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import api, first_offer, shown_counts, shown_event
from tests.support import RECORD, eventually, gql

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]


async def test_another_process_applies_and_this_one_sees_it_at_once(start_hub, settings_for):
    # A consumes the flows; B only serves the API (its cache TTL is long: only an announcement clears it).
    a = await start_hub(settings_for(cache_ttl_seconds=600))
    b = await start_hub(settings_for(cache_ttl_seconds=600), consume=False)
    async with api(a) as client_a, api(b) as client_b:
        contact, customer, offer = await first_offer(client_a, "two.processes@example.com")
        await a.settle()
        assert await shown_counts(client_b, customer) == {}  # B has the view cached now

        async with b.feed.listen(customer) as wake_b:
            await gql(client_a, RECORD, {"contactId": contact, "events": [shown_event(offer)] * 2})
            await a.settle()
            # B's subscribers are told (CM re-ranked in A) and B's cached view is cleared.
            await asyncio.wait_for(wake_b.get(), 10)
            assert await eventually(lambda: _shown(client_b, customer, offer, 2), timeout=10)

        # And the CRM side: a contact started through A shows in B's view of the customer.
        before = len((await gql(client_b, '{ customerByKey(email: "two.processes@example.com") '
                                          '{ contacts { id } } }'))["customerByKey"]["contacts"])
        await gql(client_a, 'mutation { startContact(input: {channel: SHOP, identification: '
                            '{email: "two.processes@example.com"}}) { created } }')
        await eventually(lambda: _contacts(client_b, before + 1), timeout=10)


async def _shown(client, customer: str, offer: str, n: int) -> bool:
    return (await shown_counts(client, customer)).get(offer) == n


async def _contacts(client, n: int) -> bool:
    data = await gql(client, '{ customerByKey(email: "two.processes@example.com") { contacts { id } } }')
    return len(data["customerByKey"]["contacts"]) == n
