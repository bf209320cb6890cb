"""RestAdapter (entry point `rest`): a system behind an HTTP/JSON API, described in the mapping alone.

Ports: ProfileSource (by key and/or batch endpoints, see config.Fetch), EventConsumer (events
POSTed as structured CloudEvents with an idempotency key) and PrivacyHandler (GDPR erasure and export,
see config.Privacy; NOT_SUPPORTED unless configured). Every call to the system is bounded by the
mapping's `timeout_seconds`, retried, rate-limited and guarded by a circuit breaker (see caller.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from pydantic import ValidationError

from hub.ports import (
    AdapterContext,
    AdapterError,
    CloudEvent,
    EventConsumer,
    Health,
    NotSupported,
    PermanentError,
    PrivacyHandler,
    PrivacySubject,
    ProfileSource,
    Record,
    Tx,
    is_golden_id,
)

from .auth import AuthFailed, Credentials, credentials_for, redact, secrets_of
from .caller import Caller
from .config import KEY, PrivacyCall, RestConfig
from .fetching import ProfileReader, dig
from .resilience import CircuitBreaker, Deadline, State, TokenBucket
from .wire import Answer, Wire

CLOUDEVENTS_JSON = "application/cloudevents+json"
USER_AGENT = "markiting-hub-rest-adapter"
# Transient answers of an event destination: the bus retries them. Other 4xx never succeed.
TRANSIENT_4XX = frozenset({408, 429})
DETAIL_FIELDS = ("detail", "title", "message", "error_description", "error")
MAX_DETAIL = 200


class RestAdapter:
    ports: ClassVar[tuple[type, ...]] = (ProfileSource, EventConsumer, PrivacyHandler)
    # An external system: its effects are idempotent by event id, not in the hub's transaction.
    transactional: ClassVar[bool] = False
    Config = RestConfig

    def __init__(self, ctx: AdapterContext):
        self.system = ctx.system
        self.config = _config(ctx)
        self.timeout = ctx.timeout
        self._log = ctx.log
        cfg = self.config
        self.breaker = (
            CircuitBreaker(cfg.breaker.failures, cfg.breaker.cooldown_seconds) if cfg.breaker else None
        )
        self.limiter = (
            TokenBucket(cfg.rate_limit.per_second, cfg.rate_limit.burst) if cfg.rate_limit else None
        )
        self._client: httpx.AsyncClient | None = None
        self._wire: Wire | None = None
        self._credentials: Credentials | None = None
        self._caller: Caller | None = None
        self._reader: ProfileReader | None = None

    def serves(self, port: type) -> bool:
        """Which of its ports this system's config sets up: reads need `fetch:`, events `events:`."""
        if port is ProfileSource:
            return self.config.fetch is not None
        if port is EventConsumer:
            return self.config.events is not None
        if port is PrivacyHandler:
            return self.config.privacy is not None
        return port in self.ports

    def __repr__(self) -> str:
        return f"RestAdapter(system={self.system!r}, base_url={self.config.base_url!r})"

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """One pooled client for every call. Nothing is sent yet: a system that is down must not keep
        the hub from starting (its calls fail, and its health says so)."""
        if self._client is not None:
            return
        cfg = self.config
        limits = httpx.Limits(
            # A slot each for the health probe and the token request beside the data calls.
            max_connections=cfg.max_concurrency + 2,
            max_keepalive_connections=cfg.max_concurrency,
        )
        self._client = httpx.AsyncClient(
            # httpx's API on aiohttp's wire: five concurrent calls cost httpx's own transport about
            # 7 ms of CPU more than aiohttp's (bench/RESULTS.md, view-fanout), and they are the
            # customer view's critical path.
            transport=_Transport(limits=limits, verify=cfg.verify_tls, trust_env=False),
            base_url=cfg.base_url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **cfg.headers},
            # Each attempt is bounded by asyncio.timeout (caller.py); this only keeps httpx's default
            # of 5 s from cutting a longer budget short.
            timeout=httpx.Timeout(cfg.request_timeout_seconds or self.timeout),
            # A redirect could carry the credentials to another host (httpx drops Authorization on a
            # cross-origin redirect, but not an API-key header): a 3xx is reported, not followed.
            follow_redirects=False,
            verify=cfg.verify_tls,
        )
        self._credentials = credentials_for(cfg.auth, self._client)  # token requests: httpx's client
        self._wire = Wire(
            cfg.base_url,
            {"User-Agent": USER_AGENT, "Accept": "application/json", **cfg.headers},
            max_connections=cfg.max_concurrency + 2,  # a slot each for the health probe beside the calls
            verify=cfg.verify_tls,
        )
        self._caller = Caller(
            self.system,
            self._wire,
            self._credentials,
            retry=cfg.retry,
            breaker=self.breaker,
            limiter=self.limiter,
            max_concurrency=cfg.max_concurrency,
            request_timeout=cfg.request_timeout_seconds,
            secrets=self._secrets,
            log=self._log,
        )
        if cfg.fetch is not None:
            self._reader = ProfileReader(cfg.fetch, self._caller, cfg.base_url)

    async def close(self) -> None:
        client, self._client = self._client, None
        wire, self._wire = self._wire, None
        self._caller = self._reader = self._credentials = None
        if wire is not None:
            await wire.close()
        if client is not None:
            await client.aclose()

    def _secrets(self) -> Iterable[str]:
        yield from secrets_of(self.config.auth)
        if self._credentials is not None:
            yield from self._credentials.secrets()

    def _deadline(self) -> Deadline:
        # A little short of the mapping's timeout: the hub bounds the call by the same timeout,
        # started a moment earlier, and this adapter's own timeout should fire first, so that it is
        # counted by the circuit breaker and said in its own words, instead of the call being
        # cancelled from outside (a cancellation is no verdict on the system).
        margin = min(0.1 * self.timeout, 0.2)
        return Deadline(asyncio.get_running_loop().time() + self.timeout - margin, self.timeout)

    def _started(self) -> Caller:
        if self._caller is None:
            raise AdapterError(self.system, "not started")
        return self._caller

    # --- health ------------------------------------------------------------------------------------

    async def check(self) -> Health:
        """One GET of health_path (or base_url): status and latency. Never raises. It bypasses the
        breaker and the rate limit: a probe must tell the system's state, not the hub's own."""
        if self._caller is None:
            return Health(False, "not started")
        caller = self._caller
        path = self.config.health_path or ""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(self.timeout):
                response = await caller.request(
                    "GET", path, Deadline(started + self.timeout, self.timeout), {}
                )
        except TimeoutError:
            return Health(False, f"no answer within {self.timeout:g}s{self._circuit()}")
        except AuthFailed as exc:  # its message is made to be shown
            return Health(False, redact(f"{exc}{self._circuit()}", self._secrets()))
        except Exception as exc:  # a health check reports, it does not raise
            what = "cannot connect" if isinstance(exc, httpx.ConnectError) else "request failed"
            # The exception's text may hold a URL: only its kind.
            return Health(False, f"{what} ({type(exc).__name__}){self._circuit()}")
        ms = (loop.time() - started) * 1000
        status = response.status_code
        ok = 200 <= status < 300 if self.config.health_path else status < 500
        return Health(ok, f"HTTP {status} in {ms:.0f} ms{self._circuit()}")

    def _circuit(self) -> str:
        if self.breaker is None or self.breaker.state is State.CLOSED:
            return ""
        return f"; circuit {self.breaker.state} after {self.breaker.failures} consecutive failures"

    # --- ProfileSource -----------------------------------------------------------------------------

    async def fetch(self, keys: Sequence[str]) -> Mapping[str, Record]:
        caller = self._started()
        if self._reader is None:
            raise AdapterError(self.system, "no fetch endpoint is configured (config.fetch)")
        if not keys:
            return {}
        deadline = self._deadline()
        try:
            # The safety net: every wait inside is bounded by the deadline already.
            async with asyncio.timeout(deadline.remaining() + 0.05):
                return await self._reader.fetch(keys, deadline)
        except TimeoutError:
            raise caller.error(f"no answer within {self.timeout:g}s") from None

    # --- EventConsumer -----------------------------------------------------------------------------

    async def consume(self, tx: Tx, event: CloudEvent) -> set[str]:
        """POST the event; 2xx or 409 (seen before) is done. A transient failure raises AdapterError
        for the bus to redeliver (one try here: the bus owns the back-off and the dead-letter limit);
        an answer that will never change raises PermanentError, dead-lettered with its reason. `tx` is
        not used: the idempotency key (the event id) makes a redelivery safe."""
        caller = self._started()
        events = self.config.events
        if events is None:
            raise PermanentError(f"system {self.system!r}: no events endpoint is configured (config.events)")
        what = f"POST {events.path}"
        deadline = self._deadline()
        try:
            async with asyncio.timeout(deadline.remaining() + 0.05):
                response = await caller.send(
                    "POST",
                    events.path,
                    what=what,
                    deadline=deadline,
                    retry=False,
                    content=event.to_json(),
                    headers={"Content-Type": CLOUDEVENTS_JSON, events.idempotency_header: event.id},
                )
        except TimeoutError:
            raise caller.error(f"{what}: no answer within {self.timeout:g}s") from None
        status = response.status_code
        if 200 <= status < 300 or status == 409:
            return {event.subject} if event.subject and is_golden_id(event.subject) else set()
        if status >= 500 or status in TRANSIENT_4XX:  # send raised the usual ones; 501, 505... land here
            raise caller.error(f"{what}: HTTP {status}")
        reason = f"system {self.system!r}: {what} answered HTTP {status}{self._detail(response)}"
        raise PermanentError(redact(reason, self._secrets()))

    async def consume_batch(self, tx: Tx, events: Sequence[CloudEvent]) -> set[str]:
        """The events ready on the hub's queue, in order, one POST each (each with its idempotency key):
        the hub checks and records the batch's ids once instead of once per event."""
        changed: set[str] = set()
        for event in events:
            changed |= await self.consume(tx, event)
        return changed

    # --- PrivacyHandler ----------------------------------------------------------------------------

    async def erase(self, tx: Tx, subject: PrivacySubject) -> str:
        """`privacy.erase`: 2xx, 404 (the system does not know the customer) or 410 is done."""
        _, what, response = await self._privacy("erase", subject)
        status = response.status_code
        if 200 <= status < 300 or status in (404, 410):
            return f"{what}: HTTP {status}"
        raise self._refused(what, status)

    async def export(self, tx: Tx, subject: PrivacySubject) -> Mapping[str, Any]:
        """`privacy.export`: a 2xx JSON answer is the system's part (at `record`); 404 is nothing."""
        call, what, response = await self._privacy("export", subject)
        status = response.status_code
        if status == 404:
            return {}
        if not 200 <= status < 300:
            raise self._refused(what, status)
        try:
            body: Any = response.json()
        except ValueError:
            raise PermanentError(f"system {self.system!r}: {what}: the answer is not JSON") from None
        found = dig(body, call.record)
        return found if isinstance(found, Mapping) else {"data": found}

    async def _privacy(self, kind: str, subject: PrivacySubject) -> tuple[PrivacyCall, str, Answer]:
        """One try of the configured call (the hub's bus owns the retries): the answer, unless the system
        failed in a way worth retrying (AdapterError). Told by the path template, never the key."""
        caller = self._started()
        privacy = self.config.privacy
        call = getattr(privacy, kind) if privacy is not None else None
        if privacy is None or call is None:
            raise NotSupported(f"not configured for privacy {kind} requests (config.privacy.{kind})")
        what = f"{call.method} {call.path}"
        deadline = self._deadline()
        try:
            async with asyncio.timeout(deadline.remaining() + 0.05):
                response = await caller.send(
                    call.method,
                    call.path.replace(KEY, quote(subject.key, safe="")),
                    what=what,
                    deadline=deadline,
                    retry=False,
                    headers={privacy.idempotency_header: f"{subject.request_id}:{self.system}"},
                )
        except TimeoutError:
            raise caller.error(f"{what}: no answer within {self.timeout:g}s") from None
        if response.status_code >= 500 or response.status_code in TRANSIENT_4XX:
            raise caller.error(f"{what}: HTTP {response.status_code}")
        return call, what, response

    def _refused(self, what: str, status: int) -> PermanentError:
        # Not the answer's body: it may quote the customer's data.
        return PermanentError(f"system {self.system!r}: {what} answered HTTP {status}")

    def _detail(self, response: Answer) -> str:
        """A short reason from a problem+json or similar body, kept with the dead letter."""
        try:
            body: Any = response.json()
        except ValueError:
            return ""
        if not isinstance(body, dict):
            return ""
        for name in DETAIL_FIELDS:
            value = body.get(name)
            if isinstance(value, str) and value.strip():
                # Scrubbed before it is cut: a secret cut in half would no longer be recognised.
                return f": {redact(' '.join(value.split()), self._secrets())[:MAX_DETAIL]}"
        return ""


def _config(ctx: AdapterContext) -> RestConfig:
    if isinstance(ctx.config, RestConfig):
        return ctx.config
    try:
        return RestConfig.model_validate(dict(ctx.config or {}))
    except ValidationError as exc:
        # Without the input values: they may be secrets.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(config)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"system {ctx.system!r}: invalid rest config: {problems}") from None


__all__ = ["RestAdapter", "RestConfig"]


class _Transport(AiohttpTransport):
    """httpx-aiohttp maps every aiohttp connection error, a refused one included, to ConnectTimeout:
    a refused connection is told as what it is (ConnectError), so errors and health say so."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientConnectorError) and not isinstance(cause, TimeoutError):
                raise httpx.ConnectError(str(exc), request=request) from cause
            raise
