"""Retries, Retry-After, time budget, circuit breaker and rate limit: against the real server (counts and
server-side arrival times), and the primitives alone on a clock the test drives."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from hub.ports import AdapterError
from hub_adapters.generic.rest.resilience import (
    CircuitBreaker,
    CircuitOpen,
    State,
    TokenBucket,
    backoff,
    retry_after,
)
from tests.adapters.rest.conftest import MEMBERS

KEY = "anna@example.com"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- retries ---------------------------------------------------------------------------------------


async def test_5xx_is_retried_until_it_succeeds(system, base_url, make_adapter):
    system.add(KEY, firstName="Anna")
    system.fail = [503, 502]
    adapter = await make_adapter(base_url, fetch=MEMBERS)
    assert (await adapter.fetch([KEY]))[KEY]["firstName"] == "Anna"
    assert len(system.requests("/members")) == 3


async def test_retries_stop_after_the_configured_attempts(system, base_url, make_adapter):
    system.fail_always = 500
    adapter = await make_adapter(base_url, fetch=MEMBERS)
    with pytest.raises(AdapterError, match=r"GET /members/\{key\}: HTTP 500 \(3 attempts\)") as err:
        await adapter.fetch([KEY])
    assert len(system.requests("/members")) == 3
    assert KEY not in str(err.value), "keys are personal data: errors name the path template"
    assert err.value.system == "loyalty"


async def test_other_4xx_is_not_retried(system, base_url, make_adapter):
    system.fail = [400]
    adapter = await make_adapter(base_url, fetch=MEMBERS)
    with pytest.raises(AdapterError, match="HTTP 400"):
        await adapter.fetch([KEY])
    assert len(system.requests("/members")) == 1


async def test_connect_errors_are_retried_then_reported(dead_url, make_adapter):
    adapter = await make_adapter(dead_url, fetch=MEMBERS)
    with pytest.raises(AdapterError, match=r"cannot connect \(ConnectError\) \(3 attempts\)") as err:
        await adapter.fetch([KEY])
    assert dead_url not in str(err.value)


async def test_retry_after_seconds_is_honoured(system, base_url, make_adapter):
    system.add(KEY)
    system.fail, system.retry_after = [429], "1"
    adapter = await make_adapter(base_url, timeout=3, fetch=MEMBERS)
    assert KEY in await adapter.fetch([KEY])
    first, second = system.requests("/members")
    # Back-off alone would wait at most 0.05 s here: the gap is the system's Retry-After.
    assert second.at - first.at >= 0.95


async def test_retry_after_http_date_is_honoured(system, base_url, make_adapter):
    system.add(KEY)
    system.fail = [503]
    system.retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    adapter = await make_adapter(base_url, timeout=4, fetch=MEMBERS)
    assert KEY in await adapter.fetch([KEY])
    first, second = system.requests("/members")
    assert second.at - first.at >= 0.9  # an HTTP-date has whole seconds: at least 1 s of the 2


async def test_retry_after_beyond_the_budget_fails_at_once(system, base_url, make_adapter):
    system.fail, system.retry_after = [429], "30"
    adapter = await make_adapter(base_url, timeout=2, fetch=MEMBERS)
    with pytest.raises(AdapterError, match=r"HTTP 429, Retry-After 30s is beyond the time left \(1 attempt\)"):
        await adapter.fetch([KEY])
    assert len(system.requests("/members")) == 1


async def test_a_slow_system_is_cut_off_at_its_timeout(system, base_url, make_adapter):
    system.delay = 3
    adapter = await make_adapter(base_url, timeout=0.5, fetch=MEMBERS)
    started = time.monotonic()
    with pytest.raises(AdapterError, match=r"no answer within 0.5s"):
        await adapter.fetch([KEY])
    assert time.monotonic() - started < 2.5  # the budget bounds it, whatever the system does
    assert len(system.requests("/members")) == 1


async def test_request_timeout_leaves_time_for_another_try(system, base_url, make_adapter):
    system.add(KEY)
    system.delay = 0.6
    adapter = await make_adapter(base_url, timeout=3, request_timeout_seconds=0.3, fetch=MEMBERS)
    with pytest.raises(AdapterError, match=r"no answer within 0.3s \(3 attempts\)"):
        await adapter.fetch([KEY])
    assert len(system.requests("/members")) == 3


# --- circuit breaker -------------------------------------------------------------------------------


async def test_breaker_opens_answers_at_once_and_recovers_after_a_trial(system, base_url, make_adapter):
    system.add(KEY)
    system.fail_always = 503
    adapter = await make_adapter(
        base_url, fetch=MEMBERS, retry={"attempts": 1}, breaker={"failures": 3, "cooldown_seconds": 0.5}
    )
    for _ in range(3):
        with pytest.raises(AdapterError, match="HTTP 503"):
            await adapter.fetch([KEY])
    assert adapter.breaker.state is State.OPEN
    for _ in range(5):
        with pytest.raises(AdapterError, match="circuit open after 3 consecutive failures"):
            await adapter.fetch([KEY])
    assert len(system.requests("/members")) == 3, "an open circuit sends nothing"

    await asyncio.sleep(0.6)  # the cool-down: one trial goes through, fails, and opens it again
    with pytest.raises(AdapterError, match="HTTP 503"):
        await adapter.fetch([KEY])
    with pytest.raises(AdapterError, match="circuit open"):
        await adapter.fetch([KEY])
    assert len(system.requests("/members")) == 4

    system.fail_always = None
    await asyncio.sleep(0.6)
    assert KEY in await adapter.fetch([KEY])  # the trial succeeds: closed again
    assert adapter.breaker.state is State.CLOSED
    assert KEY in await adapter.fetch([KEY])
    assert len(system.requests("/members")) == 6


async def test_half_open_lets_a_single_trial_through(system, base_url, make_adapter):
    system.add(KEY)
    system.fail_always = 503
    adapter = await make_adapter(
        base_url, fetch=MEMBERS, retry={"attempts": 1}, breaker={"failures": 1, "cooldown_seconds": 0.3}
    )
    with pytest.raises(AdapterError):
        await adapter.fetch([KEY])
    await asyncio.sleep(0.35)
    system.fail_always, system.delay = None, 0.3
    results = await asyncio.gather(*(adapter.fetch([KEY]) for _ in range(5)), return_exceptions=True)
    assert sum(isinstance(r, dict) for r in results) == 1
    assert all("circuit open" in str(r) for r in results if isinstance(r, AdapterError))
    assert len(system.requests("/members")) == 2


async def test_timeouts_count_as_failures_for_the_breaker(system, base_url, make_adapter):
    system.delay = 2
    adapter = await make_adapter(
        base_url, timeout=0.3, fetch=MEMBERS, retry={"attempts": 1}, breaker={"failures": 2, "cooldown_seconds": 60}
    )
    for _ in range(2):
        with pytest.raises(AdapterError, match="no answer within"):
            await adapter.fetch([KEY])
    with pytest.raises(AdapterError, match="circuit open"):
        await adapter.fetch([KEY])
    assert len(system.requests("/members")) == 2


async def test_4xx_answers_do_not_open_the_breaker(system, base_url, make_adapter):
    system.fail_always = 400
    adapter = await make_adapter(base_url, fetch=MEMBERS, breaker={"failures": 2, "cooldown_seconds": 60})
    for _ in range(4):
        with pytest.raises(AdapterError, match="HTTP 400"):
            await adapter.fetch([KEY])
    assert adapter.breaker.state is State.CLOSED


def test_breaker_states_on_a_driven_clock():
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, cooldown=10, clock=clock)
    assert breaker.admit() is False
    breaker.failure(False)
    breaker.success(False)  # a success in between: failures must be consecutive
    breaker.failure(breaker.admit())
    assert breaker.state is State.CLOSED
    breaker.failure(breaker.admit())
    assert breaker.state is State.OPEN
    with pytest.raises(CircuitOpen) as err:
        breaker.admit()
    assert err.value.retry_in == pytest.approx(10)
    clock.now += 10
    assert breaker.state is State.HALF_OPEN
    trial = breaker.admit()
    assert trial is True
    with pytest.raises(CircuitOpen):
        breaker.admit()  # one trial at a time
    breaker.release(trial)  # the trial's caller was cancelled: no verdict, the slot is free again
    trial = breaker.admit()
    breaker.failure(trial)
    assert breaker.state is State.OPEN
    clock.now += 10
    breaker.success(breaker.admit())
    assert breaker.state is State.CLOSED and breaker.failures == 0


# --- rate limit ------------------------------------------------------------------------------------


async def test_rate_limit_spaces_requests(system, base_url, make_adapter):
    for i in range(6):
        system.add(f"m{i}@example.com")
    adapter = await make_adapter(base_url, timeout=5, fetch=MEMBERS, rate_limit={"per_second": 10, "burst": 2})
    await adapter.fetch([f"m{i}@example.com" for i in range(6)])
    arrivals = sorted(h.at for h in system.requests("/members"))
    assert len(arrivals) == 6
    # A burst of 2, then one every 0.1 s: the 6th cannot arrive before 0.4 s after the first.
    assert arrivals[-1] - arrivals[0] >= 0.4 * 0.95
    assert arrivals[1] - arrivals[0] < 0.1  # the burst goes at once


async def test_rate_limit_refuses_a_wait_beyond_the_budget(system, base_url, make_adapter):
    for i in range(3):
        system.add(f"m{i}@example.com")
    adapter = await make_adapter(base_url, timeout=0.5, fetch=MEMBERS, rate_limit={"per_second": 1, "burst": 1})
    with pytest.raises(AdapterError, match=r"rate limit: next slot in .* beyond the time left"):
        await adapter.fetch([f"m{i}@example.com" for i in range(3)])
    # Fails without waiting for slots it cannot get; the one request that had a slot is cancelled
    # with the read, or got in first.
    assert len(system.requests("/members")) <= 1


def test_token_bucket_on_a_driven_clock():
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]
    assert bucket.reserve() == pytest.approx(0.5)
    assert bucket.reserve() == pytest.approx(1.0)  # reservations queue up behind each other
    bucket.give_back()
    clock.now += 10
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]  # refilled to the burst, not beyond


# --- back-off and Retry-After ------------------------------------------------------------------------


def test_full_jitter_backoff_grows_and_is_capped():
    top = lambda lo, hi: hi  # noqa: E731 - the upper bound of the jitter
    assert [backoff(a, 0.1, 1.0, top) for a in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert all(0 <= backoff(3, 0.1, 1.0) <= 0.4 for _ in range(100))


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after("7") == 7
    assert retry_after("Thu, 01 Jan 2026 12:00:05 GMT", lambda: now) == 5
    assert retry_after("Thu, 01 Jan 2026 11:00:00 GMT", lambda: now) == 0
    assert retry_after("soon") is None
    assert retry_after(None) is None
