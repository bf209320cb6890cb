"""startContact's group commit: contacts started at the same time go in one transaction, with the same
outcome as one by one: the same visitor twice at once is one customer, keys that would join customers
follow the merge rules, and a visit that fails fails alone (its group's others are started, nothing of it
is written). Each group's visits are also answered with one read per system (hub.core.coalesce)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from hub.model import Channel, Key, KeyKind
from hub.store.tables import contacts, customer_keys, customers
from tests.support import gql


class Groups:
    """The sizes of the groups the hub's ContactService starts (its transactions)."""

    def __init__(self, hub) -> None:
        self.service = hub.contacts
        self.real = self.service._start_group
        self.sizes: list[int] = []
        self.service._start_group = self.record

    async def record(self, visits):
        self.sizes.append(len(visits))
        return await self.real(visits)

    def restore(self) -> None:
        self.service._start_group = self.real


def email(value: str) -> Key:
    return Key(KeyKind.EMAIL, value)


async def count(hub, table) -> int:
    async with hub.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_contacts_started_at_once_share_transactions_with_the_outcome_of_one_by_one(hub):
    known = await hub.contacts.start(Channel.WEBSITE, [email("known@example.com")], "Known")
    other = await hub.contacts.start(Channel.WEBSITE, [Key(KeyKind.COOKIE_ID, "other-cookie")], None)
    groups = Groups(hub)
    try:
        visits = [
            *[([email(f"new{i}@example.com")], None, True) for i in range(12)],
            ([email("known@example.com")], None, True),  # returning
            ([email("twice@example.com")], "Twice", True),  # the same new visitor, three times at once
            ([email("twice@example.com")], None, True),
            ([email("twice@example.com")], None, True),
            # keys of two customers: joined to the strongest (email) only for a caller that may merge
            ([Key(KeyKind.COOKIE_ID, "other-cookie"), email("known@example.com")], None, False),
            ([Key(KeyKind.COOKIE_ID, "known-cookie"), email("known@example.com")], "Known Again", True),
        ]
        started = await asyncio.gather(*(
            hub.contacts.start(Channel.WEBSITE, keys, name, may_merge=merge) for keys, name, merge in visits
        ))
    finally:
        groups.restore()
    assert max(groups.sizes) > 1, f"no two contacts shared a transaction: {groups.sizes}"
    assert sum(groups.sizes) >= len(visits)

    new = started[:12]
    assert all(s.created for s in new) and len({s.customer_id for s in new}) == 12
    assert started[12].customer_id == known.customer_id and not started[12].created
    twice = started[13:16]
    assert len({s.customer_id for s in twice}) == 1, "one visitor twice at once became two customers"
    assert sum(s.created for s in twice) == 1
    no_merge, merged = started[16], started[17]
    assert no_merge.customer_id == other.customer_id and no_merge.unlinked == (email("known@example.com"),)
    assert merged.customer_id == known.customer_id and not merged.unlinked

    assert len({s.contact.id for s in started}) == len(visits)
    assert await count(hub, contacts) == len(visits) + 2
    assert await count(hub, customers) == 2 + 12 + 1
    async with hub.engine.connect() as conn:
        owners = dict((await conn.execute(select(customer_keys.c.value, customer_keys.c.customer_id))).all())
    assert owners["twice@example.com"] == twice[0].customer_id
    assert owners["known-cookie"] == known.customer_id
    assert owners["other-cookie"] == other.customer_id  # not moved by the caller that may not merge
    # The registry was told: the view (built-in CRM) knows each new customer and the name given.
    views = await hub.views.load_many([twice[0].customer_id, known.customer_id, new[0].customer_id])
    assert [v.name if v else None for v in views] == ["Twice", "Known Again", None]


async def test_a_visit_that_fails_fails_alone_and_leaves_nothing(hub):
    crm = hub.systems.one("contact_registry")
    real_one, real_many = crm.upsert_customer, crm.upsert_customers

    def refuse(facts):
        if facts.name == "Refused":
            raise RuntimeError("the registry refuses this customer")

    async def upsert_customer(tx, facts):
        refuse(facts)
        return await real_one(tx, facts)

    async def upsert_customers(tx, told):
        for facts in told:
            refuse(facts)
        return await real_many(tx, told)

    crm.upsert_customer, crm.upsert_customers = upsert_customer, upsert_customers
    groups = Groups(hub)
    try:
        results = await asyncio.gather(
            *(hub.contacts.start(Channel.CALLCENTER, [email(f"fine{i}@example.com")], None) for i in range(6)),
            hub.contacts.start(Channel.CALLCENTER, [email("refused@example.com")], "Refused"),
            *(hub.contacts.start(Channel.CALLCENTER, [email(f"later{i}@example.com")], None) for i in range(6)),
            return_exceptions=True,
        )
    finally:
        groups.restore()
        crm.upsert_customer, crm.upsert_customers = real_one, real_many
    assert max(groups.sizes) > 1
    refused = results[6]
    assert isinstance(refused, RuntimeError) and "refuses" in str(refused)
    fine = [r for i, r in enumerate(results) if i != 6]
    assert not any(isinstance(r, BaseException) for r in fine), fine
    assert await hub.contacts.find([email("refused@example.com")]) is None
    for i in range(6):
        assert await hub.contacts.find([email(f"fine{i}@example.com")]) is not None
        assert await hub.contacts.find([email(f"later{i}@example.com")]) is not None
    assert await count(hub, contacts) == 12


async def test_a_caller_that_goes_away_while_waiting_leaves_the_others_be(hub):
    groups = Groups(hub)
    try:
        first = asyncio.ensure_future(hub.contacts.start(Channel.WEBSITE, [email("first@example.com")], None))
        await asyncio.sleep(0)  # the first group runs
        waiting = [asyncio.ensure_future(hub.contacts.start(Channel.WEBSITE, [email(f"w{i}@example.com")], None))
                   for i in range(5)]
        await asyncio.sleep(0)
        waiting[2].cancel()
        done = await asyncio.gather(first, *waiting, return_exceptions=True)
    finally:
        groups.restore()
    assert isinstance(done[3], asyncio.CancelledError)
    assert [isinstance(d, BaseException) for d in done] == [False, False, False, True, False, False]
    assert await hub.contacts.find([email("w1@example.com")]) is not None
    assert await hub.contacts.find([email("w2@example.com")]) is None  # never started
    assert sorted(groups.sizes) == [1, 4]


@pytest.mark.parametrize("callers", [16])
async def test_a_group_is_answered_with_one_read_per_system(client, hub, callers):
    sources = hub.systems.all("profile_source")
    reads: list[tuple[str, int]] = []
    real = {name: source.fetch for name, source in sources.items()}

    def counted(name):
        async def fetch(keys):
            reads.append((name, len(keys)))
            return await real[name](keys)
        return fetch

    for name, source in sources.items():
        source.fetch = counted(name)
    groups = Groups(hub)
    query = """mutation($e: String!) { startContact(input: {channel: WEBSITE, identification: {email: $e}}) {
      customer { id emails } nextBestActions { offerId } } }"""
    try:
        answers = await asyncio.gather(*(gql(client, query, {"e": f"answered{i}@example.com"})
                                         for i in range(callers)))
    finally:
        groups.restore()
        for name, source in sources.items():
            source.fetch = real[name]
    for i, answer in enumerate(answers):
        assert answer["startContact"]["customer"]["emails"] == [f"answered{i}@example.com"]
        assert answer["startContact"]["nextBestActions"]
    assert max(groups.sizes) > 1
    # No more reads of a system than groups: the contacts of a group are read together.
    for name in sources:
        mine = [n for s, n in reads if s == name]
        assert sum(mine) == callers and len(mine) <= len(groups.sizes), (name, mine, groups.sizes)
