"""One logical request to the system, made resilient: circuit breaker, rate limit, bounded concurrency,
a per-attempt timeout, credentials (renewed once on a 401), and retries with back-off.

The order is the usual one (as in resilience4j): the retry loop outside, then per attempt the breaker
(an open circuit fails at once, without waiting for a rate-limit slot), the rate limit, the
concurrency slot, the request. Every failure leaves as an `AdapterError` whose message names the
request by its configured path template, never by its full URL: keys (emails...) are personal data
and credentials must not leak, so the text is also scrubbed of every known secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from hub.ports import AdapterError

from .auth import AuthFailed, Credentials, redact
from .config import Retry
from .resilience import (
    CircuitBreaker,
    CircuitOpen,
    Deadline,
    RateLimited,
    State,
    TokenBucket,
    backoff,
    retry_after,
)
from .wire import Answer, Wire

# Worth another try: the system may answer next time. 408 is the server saying the request took too
# long to arrive; the rest of 4xx would fail the same way again.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Transport failures worth another try. Not httpx.UnsupportedProtocol, LocalProtocolError or
# InvalidURL: those are mistakes on this side that no retry repairs.
RETRY_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
FAILURES: tuple[type[Exception], ...] = (TimeoutError, *RETRY_ERRORS)  # the system's fault


class BudgetSpent(Exception):
    """The time budget ran out before the request could be sent."""


class Caller:
    def __init__(
        self,
        system: str,
        wire: Wire,
        credentials: Credentials,
        *,
        retry: Retry,
        breaker: CircuitBreaker | None,
        limiter: TokenBucket | None,
        max_concurrency: int,
        request_timeout: float | None,
        secrets: Callable[[], Iterable[str]],
        log: logging.Logger,
    ):
        self.system = system
        self.wire = wire
        self.credentials = credentials
        self._retry = retry
        self._breaker = breaker
        self._limiter = limiter
        self._slots = asyncio.Semaphore(max_concurrency)
        self._request_timeout = request_timeout
        self._secrets = secrets
        self._log = log

    def error(self, message: str) -> AdapterError:
        return AdapterError(self.system, redact(message, self._secrets()))

    async def send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        deadline: Deadline,
        retry: bool = True,
        **request: Any,
    ) -> Answer:
        """The system's answer, unless it is a failure worth retrying (RETRY_STATUSES); those are
        retried while attempts and time are left, then raised as AdapterError, as is every transport
        failure. Other answers (2xx, 404, 409, other 4xx) are the caller's to interpret."""
        attempts = self._retry.attempts if retry else 1
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                response = await self._attempt(method, url, deadline, request)
            except CircuitOpen as exc:
                raise self.error(str(exc)) from None
            except RateLimited as exc:
                raise self.error(f"{what}: {exc}") from None
            except AuthFailed as exc:
                raise self.error(str(exc)) from None
            except BudgetSpent:
                raise self.error(f"{what}: no answer within {deadline.seconds:g}s") from None
            except TimeoutError:
                if deadline.remaining() <= 0:
                    # The whole budget is spent: say it as the hub says a timeout.
                    raise self.error(f"{what}: no answer within {deadline.seconds:g}s") from None
                failure = f"no answer within {self._request_timeout or deadline.seconds:g}s"
            except RETRY_ERRORS as exc:
                # The exception's text may hold the URL (keys, personal data): its kind says enough.
                failure = f"{_kind(exc)} ({type(exc).__name__})"
            except httpx.HTTPError as exc:
                raise self.error(f"{what}: request failed ({type(exc).__name__})") from None
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                failure = f"HTTP {response.status_code}"
                wait = retry_after(response.headers.get("Retry-After"))
            if attempt >= attempts:
                break
            delay = (
                wait
                if wait is not None
                else backoff(attempt, self._retry.backoff_seconds, self._retry.max_backoff_seconds)
            )
            if delay >= deadline.remaining():
                # Sleeping would only end in a timeout: fail now, and say why.
                if wait is not None:
                    failure += f", Retry-After {wait:g}s is beyond the time left"
                break
            self._log.info(
                "system %s: %s: %s; try %d of %d in %.2fs",
                self.system,
                what,
                failure,
                attempt + 1,
                attempts,
                delay,
            )
            await asyncio.sleep(delay)
        tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
        raise self.error(f"{what}: {failure} ({tries})")

    async def _attempt(self, method: str, url: str, deadline: Deadline, request: dict[str, Any]) -> Answer:
        trial = self._breaker.admit() if self._breaker is not None else False
        try:
            if self._limiter is not None:
                await self._limiter.acquire(deadline)
            async with self._slots:
                bound = deadline.remaining()
                if bound <= 0:
                    # Spent waiting for a slot: the system was not asked, so this is no verdict on it.
                    raise BudgetSpent
                if self._request_timeout is not None:
                    bound = min(bound, self._request_timeout)
                async with asyncio.timeout(bound):
                    response = await self.request(method, url, deadline, request)
        except FAILURES:
            self._verdict(trial, ok=False)
            raise
        except BaseException:
            # No verdict on the system: a rate-limit refusal, missing credentials, a cancelled caller.
            if self._breaker is not None:
                self._breaker.release(trial)
            raise
        # Any answer below 500 shows the system is up (a 404 or a 429 included).
        self._verdict(trial, ok=response.status_code < 500)
        return response

    def _verdict(self, trial: bool, ok: bool) -> None:
        if self._breaker is None:
            return
        if ok:
            self._breaker.success(trial)
            return
        was_closed = self._breaker.state is State.CLOSED
        self._breaker.failure(trial)
        if was_closed and self._breaker.state is not State.CLOSED:
            self._log.warning(
                "system %s: circuit opened after %d consecutive failures; calls fail at once for %gs",
                self.system,
                self._breaker.failures,
                self._breaker.cooldown,
            )

    async def request(self, method: str, url: str, deadline: Deadline, request: dict[str, Any]) -> Answer:
        """One request with credentials; a 401 to renewable credentials renews them and tries once more
        (the token may have been revoked or expired early)."""
        extra = request.get("headers") or {}
        rest = {k: v for k, v in request.items() if k != "headers"}
        used = await self.credentials.headers(deadline)
        response = await self.wire.request(method, url, headers={**extra, **used}, **rest)
        if response.status_code == 401 and self.credentials.refreshable:
            self.credentials.invalidate(used)
            used = await self.credentials.headers(deadline)
            response = await self.wire.request(method, url, headers={**extra, **used}, **rest)
        return response


def _kind(exc: Exception) -> str:
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return "cannot connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return "connection failed"
