"""Resilience primitives, free of HTTP: a time budget, back-off with full jitter, Retry-After, a token
bucket and a circuit breaker. Each takes its clock, so tests can drive time instead of sleeping."""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Deadline:
    """The time left for one operation (a read of several keys, one event), on the loop's clock: every
    wait and every request inside it is bounded by what remains."""

    at: float
    seconds: float  # the whole budget, for messages

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(asyncio.get_running_loop().time() + seconds, seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - asyncio.get_running_loop().time())


def backoff(
    attempt: int, base: float, cap: float, rand: Callable[[float, float], float] = random.uniform
) -> float:
    """Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): a uniform delay up to
    base * 2^(attempt-1), capped. Callers that fail together spread out instead of retrying in step."""
    return rand(0.0, min(cap, base * 2 ** max(0, attempt - 1)))


def retry_after(value: str | None, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 10.2.3: delay-seconds or an HTTP-date);
    None when absent or unreadable, so the caller falls back to its own back-off."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())


class RateLimited(Exception):
    """The rate limit has no slot for this request within its time budget."""

    def __init__(self, wait: float):
        super().__init__(f"rate limit: next slot in {wait:.2f}s, beyond the time left")
        self.wait = wait


class TokenBucket:
    """`rate` requests per second on average, `burst` at once. A caller reserves the next slot and
    sleeps until it; reservations queue in arrival order, so waiting callers are served fairly."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic):
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def reserve(self) -> float:
        """Take a token (possibly one not refilled yet); return how long to wait before using it."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def give_back(self) -> None:
        """Return a reserved token that will not be used (its caller gave up)."""
        self._tokens = min(self.burst, self._tokens + 1.0)

    async def acquire(self, deadline: Deadline) -> None:
        wait = self.reserve()
        if wait <= 0:
            return
        if wait > deadline.remaining():
            self.give_back()
            raise RateLimited(wait)
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError:
            self.give_back()
            raise


class State(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitOpen(Exception):
    def __init__(self, failures: int, retry_in: float):
        super().__init__(f"circuit open after {failures} consecutive failures; next trial in {retry_in:.1f}s")
        self.retry_in = retry_in


class CircuitBreaker:
    """Closed: calls pass, consecutive failures are counted. At `threshold` it opens: calls fail at
    once (no request, no waiting) for `cooldown` seconds. Then it is half-open: one trial call passes
    (others still fail at once); its success closes the breaker, its failure opens it again.

    Every admitted call ends in exactly one of success, failure or release (no verdict, e.g. the
    caller was cancelled): a release frees the half-open trial slot, so the breaker cannot stick."""

    def __init__(self, threshold: int, cooldown: float, clock: Clock = time.monotonic):
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._open = False
        self._trial = False  # a half-open trial call is in flight

    @property
    def state(self) -> State:
        if not self._open:
            return State.CLOSED
        if self._clock() - self._opened_at >= self.cooldown:
            return State.HALF_OPEN
        return State.OPEN

    @property
    def failures(self) -> int:
        return self._failures

    def admit(self) -> bool:
        """Let a call through or raise CircuitOpen; True when the call is the half-open trial."""
        state = self.state
        if state is State.CLOSED:
            return False
        if state is State.HALF_OPEN and not self._trial:
            self._trial = True
            return True
        retry_in = max(0.0, self._opened_at + self.cooldown - self._clock())
        raise CircuitOpen(self._failures, retry_in)

    def success(self, trial: bool) -> None:
        if trial or not self._open:
            self._open = False
            self._failures = 0
        if trial:
            self._trial = False

    def failure(self, trial: bool) -> None:
        self._failures += 1
        if trial or (not self._open and self._failures >= self.threshold):
            self._open = True
            self._opened_at = self._clock()
        if trial:
            self._trial = False

    def release(self, trial: bool) -> None:
        if trial:
            self._trial = False
