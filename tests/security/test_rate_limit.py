"""The rate limit per credential: HUB_RATE_LIMIT requests per second with a burst of twice that, then
HTTP 429 with Retry-After and RATE_LIMITED; other credentials are not held up."""

from __future__ import annotations

import pytest

from tests.support import codes


@pytest.fixture
def hub_settings(database_url, broker_url, bus_namespace):
    from hub.config import Settings

    return Settings(database_url=database_url, broker_url=broker_url, bus_namespace=bus_namespace,
                    auth="required", rate_limit=2)


async def test_past_the_burst_callers_wait(hub, new_key, caller):
    busy, other = await new_key(), await new_key()
    async with caller(busy) as client:
        statuses = []
        for _ in range(12):
            response = await client.post("/graphql", json={"query": "{ offers { id } }"})
            statuses.append(response.status_code)
            if response.status_code == 429:
                refused = response
    # A burst of twice the rate (4), plus what refills while the 12 calls run (2/s).
    assert 4 <= statuses.count(200) <= 6, statuses
    assert statuses[:4] == [200] * 4 and statuses[-1] == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert codes(refused.json()) == ["RATE_LIMITED"]
    async with caller(other) as client:
        assert (await client.post("/graphql", json={"query": "{ offers { id } }"})).status_code == 200


async def test_guessing_keys_is_held_to_the_limit_too(hub, anonymous, new_key, caller):
    statuses = []
    for n in range(10):
        headers = {"Authorization": f"Bearer mkh_{n:012x}_{'x' * 32}"}
        statuses.append((await anonymous.post("/graphql", json={"query": "{ offers { id } }"},
                                              headers=headers)).status_code)
    assert statuses[:4] == [401] * 4 and statuses[-1] == 429, statuses


async def test_a_known_key_is_not_held_up_by_others_guessing_after_the_key_cache_drops(
    hub, anonymous, new_key, caller
):
    token = await new_key()
    async with caller(token) as client:
        assert (await client.post("/graphql", json={"query": "{ offers { id } }"})).status_code == 200
        await new_key(name="another")  # a key made: every process drops its cache of verified keys
        await hub.security.authn.keys.refresh()
        for n in range(6):  # someone at the same address guesses until they are held up
            await anonymous.post("/graphql", json={"query": "{ offers { id } }"},
                                 headers={"Authorization": f"Bearer mkh_{n:012x}_{'y' * 32}"})
        assert (await client.post("/graphql", json={"query": "{ offers { id } }"})).status_code == 200
        # A guess of this very key id with a wrong secret is still held up.
        wrong = token[: -len(token.split("_", 2)[2])] + "z" * 32
        guessed = await anonymous.post("/graphql", json={"query": "{ offers { id } }"},
                                       headers={"Authorization": f"Bearer {wrong}"})
        assert guessed.status_code == 429


async def test_a_known_key_is_not_held_up_by_others_guessing(hub, anonymous, new_key, caller):
    token = await new_key()
    async with caller(token) as client:
        assert (await client.post("/graphql", json={"query": "{ offers { id } }"})).status_code == 200
        for n in range(6):  # someone at the same address guesses until they are held up
            await anonymous.post("/graphql", json={"query": "{ offers { id } }"},
                                 headers={"Authorization": f"Bearer mkh_{n:012x}_{'y' * 32}"})
        assert (await client.post("/graphql", json={"query": "{ offers { id } }"})).status_code == 200
