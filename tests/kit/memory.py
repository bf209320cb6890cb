"""An in-memory system with connections, a good adapter for it, and adapters that each break one
rule of the kit: tests/kit/test_kit_catches.py runs the kit against all of them.

The system behaves like a network service where it matters to the kit: a request is answered on its
connection after the system's delay, a dead system refuses connections and resets open ones, and an
answer nobody read stays on the connection (so a connection reused after a cancelled request answers
the old question)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, ClassVar, TypeVar

from pydantic import Field, field_validator

from hub.events import CloudEvent
from hub.ports import (
    AdapterConfig,
    AdapterContext,
    CustomerRequest,
    EventConsumer,
    Health,
    Period,
    PrivacyHandler,
    PrivacySubject,
    ProfileSource,
    Record,
    RequestCount,
    RequestRegistry,
    SecretStr,
    StatusChange,
    Tx,
)
from hub.ports.testing import BaseHarness

T = TypeVar("T")
SYSTEMS: dict[str, MemorySystem] = {}  # instance name (in the adapter's config) -> the system
log = logging.getLogger("tests.kit.memory")


class MemorySystem:
    def __init__(self, token: str):
        self.token = token
        self.records: dict[str, dict[str, Any]] = {}
        self.applied: dict[str, int] = {}  # event id -> times applied
        self.idempotency_keys: set[str] = set()
        self.requests: dict[str, CustomerRequest] = {}
        self.calls = 0
        self.delay = 0.0
        self.down = False
        self._speed_changed = asyncio.Event()

    def connect(self, token: str) -> Connection:
        if self.down:
            raise ConnectionRefusedError("memory system refuses connections")
        if token != self.token:
            raise PermissionError("memory system: bad token")
        return Connection(self)

    def slow(self, seconds: float) -> None:
        self.delay = seconds
        self._speed_changed.set()
        self._speed_changed = asyncio.Event()

    async def hold(self) -> None:
        loop = asyncio.get_running_loop()
        received = loop.time()
        while (remaining := received + self.delay - loop.time()) > 0:
            changed = self._speed_changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    def lookup(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {k: dict(self.records[k]) for k in keys if k in self.records}

    def apply(self, event_id: str, idempotency_key: str | None) -> None:
        if idempotency_key is not None:
            if idempotency_key in self.idempotency_keys:
                return
            self.idempotency_keys.add(idempotency_key)
        self.applied[event_id] = self.applied.get(event_id, 0) + 1


class Connection:
    def __init__(self, system: MemorySystem):
        self.system = system
        self.answers: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    async def ask(self, question: Callable[[MemorySystem], T]) -> T:
        self.system.calls += 1
        task = asyncio.create_task(self._answer(question))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        answer = await self.answers.get()
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def _answer(self, question: Callable[[MemorySystem], Any]) -> None:
        await self.system.hold()
        if self.system.down:
            await self.answers.put(ConnectionResetError("memory system reset the connection"))
        else:
            await self.answers.put(question(self.system))


class MemoryConfig(AdapterConfig):
    instance: str
    token: SecretStr
    max_batch: int = Field(100, gt=0)

    @field_validator("token")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 8:
            raise ValueError("the token is too short (at least 8 characters)")
        return v


class _Core:
    """Everything but consume: a pool of connections, dropped when a request did not complete."""

    ports: ClassVar[tuple[type, ...]] = (ProfileSource, EventConsumer, RequestRegistry, PrivacyHandler)
    Config: ClassVar[type[AdapterConfig]] = MemoryConfig
    reuse_unfinished = False  # the classic bug: back to the pool with an answer still to come

    def __init__(self, ctx: AdapterContext):
        self.system = ctx.system
        self.config = ctx.config
        self._backend: MemorySystem | None = None
        self._idle: list[Connection] = []

    @property
    def backend(self) -> MemorySystem:
        assert self._backend is not None, "start() first"
        return self._backend

    async def start(self) -> None:
        self._backend = SYSTEMS[self.config.instance]

    async def close(self) -> None:
        self._idle.clear()

    async def check(self) -> Health:
        try:
            await self.ask(lambda s: "pong")
        except OSError as exc:
            return Health(False, type(exc).__name__)
        return Health(True, "pong")

    async def ask(self, question: Callable[[MemorySystem], T]) -> T:
        conn = self._idle.pop() if self._idle else self.backend.connect(self.config.token.get_secret_value())
        try:
            answer = await conn.ask(question)
        except BaseException:
            if self.reuse_unfinished:
                self._idle.append(conn)
            raise
        self._idle.append(conn)
        return answer

    async def fetch(self, keys: Sequence[str]) -> Mapping[str, Record]:
        ids = list(dict.fromkeys(keys))
        if not ids:
            return {}
        return await self.ask(lambda s: s.lookup(ids))

    # RequestRegistry: an external system's, so `tx` is ignored
    async def add_request(self, tx: Tx, request: CustomerRequest) -> None:
        await self.ask(lambda s: s.requests.__setitem__(request.id, request))

    async def add_status(self, tx: Tx, request_id: str, change: StatusChange) -> None:
        await self.ask(lambda s: s.requests.__setitem__(request_id, s.requests[request_id].moved(change)))

    async def locked_request(self, tx: Tx, request_id: str) -> CustomerRequest | None:
        return await self.ask(lambda s: s.requests.get(request_id))

    async def requests(self, request_ids: Sequence[str]) -> Mapping[str, CustomerRequest]:
        return await self.ask(lambda s: {i: s.requests[i] for i in request_ids if i in s.requests})

    async def requests_of(self, customer_ids: Sequence[str]) -> Mapping[str, Sequence[CustomerRequest]]:
        def of(s: MemorySystem) -> dict[str, list[CustomerRequest]]:
            out: dict[str, list[CustomerRequest]] = {}
            for r in sorted(s.requests.values(), key=lambda r: r.created_at, reverse=True):
                if r.customer_id in customer_ids:
                    out.setdefault(r.customer_id, []).append(r)
            return out

        return await self.ask(of)

    # RequestReports (optional): requests made in the period, by kind and status
    async def request_counts(self, period: Period) -> list[RequestCount]:
        def count(s: MemorySystem) -> list[RequestCount]:
            found = Counter(
                (r.kind, r.status) for r in s.requests.values()
                if (period.start is None or r.created_at >= period.start)
                and (period.end is None or r.created_at < period.end)
            )
            return [RequestCount(kind, status, n) for (kind, status), n in sorted(found.items())]

        return await self.ask(count)

    # PrivacyHandler: an external system's, so `tx` is ignored
    async def erase(self, tx: Tx, subject: PrivacySubject) -> str:
        gone = await self.ask(lambda s: s.records.pop(subject.key, None))
        return "1 record removed" if gone else "nothing held"

    async def export(self, tx: Tx, subject: PrivacySubject) -> Mapping[str, Any]:
        return await self.ask(lambda s: dict(s.records.get(subject.key, {})))


class MemoryAdapter(_Core):
    """Good: the kit passes."""

    async def consume(self, tx: Tx, event: CloudEvent) -> set[str]:
        await self.ask(lambda s: s.apply(event.id, idempotency_key=event.id))
        return {event.subject} if event.subject else set()

    async def consume_batch(self, tx: Tx, events: Sequence[CloudEvent]) -> set[str]:
        changed: set[str] = set()
        for event in events:
            changed |= await self.consume(tx, event)
        return changed


class NoConsume(_Core):
    """Declares EventConsumer without consume()."""


class PerKeyFetch(MemoryAdapter):
    """One backend call per key."""

    async def fetch(self, keys: Sequence[str]) -> Mapping[str, Record]:
        out: dict[str, Record] = {}
        for key in dict.fromkeys(keys):
            out.update(await self.ask(partial(MemorySystem.lookup, keys=[key])))
        return out


class Poisoned(MemoryAdapter):
    """Puts a connection back in the pool although its request was cancelled."""

    reuse_unfinished = True


class NotIdempotent(MemoryAdapter):
    """Applies an event again on redelivery: it sends no idempotency key."""

    async def consume(self, tx: Tx, event: CloudEvent) -> set[str]:
        await self.ask(lambda s: s.apply(event.id, idempotency_key=None))
        return set()


class BatchTwice(MemoryAdapter):
    """Applies every event of a batch, also one it holds twice: no idempotency key in batches."""

    async def consume_batch(self, tx: Tx, events: Sequence[CloudEvent]) -> set[str]:
        for event in events:
            await self.ask(lambda s, e=event: s.apply(e.id, idempotency_key=None))
        return set()


class ForgetsHistory(MemoryAdapter):
    """Keeps a request's latest status and drops the ones before it."""

    async def add_status(self, tx: Tx, request_id: str, change: StatusChange) -> None:
        def keep(s: MemorySystem) -> None:
            request = s.requests[request_id]
            s.requests[request_id] = replace(request, status=change.status, history=(change,))

        await self.ask(keep)


class EchoingConfig(MemoryConfig):
    @field_validator("token")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 8:
            raise ValueError(f"the token {v.get_secret_value()!r} is too short")
        return v


class EchoesSecretInConfigError(MemoryAdapter):
    Config = EchoingConfig


class LogsSecret(MemoryAdapter):
    async def fetch(self, keys: Sequence[str]) -> Mapping[str, Record]:
        log.debug("fetching %d keys with token %s", len(keys), self.config.token.get_secret_value())
        return await super().fetch(keys)


class DeadIsHealthy(MemoryAdapter):
    async def check(self) -> Health:
        try:
            await self.ask(lambda s: "pong")
        except OSError:
            return Health(True, "probably fine")
        return Health(True, "pong")


class KeepsErased(MemoryAdapter):
    """Says it erased the customer, and still gives their record."""

    async def erase(self, tx: Tx, subject: PrivacySubject) -> str:
        return "1 record removed"


class CountsEveryPeriod(MemoryAdapter):
    """Reports every request whatever period it is asked for."""

    async def request_counts(self, period: Period) -> list[RequestCount]:
        return await super().request_counts(Period())


class MemoryHarness(BaseHarness):
    system = "mem"
    timeout = 0.2
    SHORT = "Zq7#xk!"  # too short a token: a secret too, it comes from the environment

    def __init__(self, entry_point: str):
        token = f"mem-secret-{uuid.uuid4().hex}"
        self.entry_point = entry_point
        self.backend = MemorySystem(token)
        instance = f"mem-{uuid.uuid4().hex[:8]}"
        SYSTEMS[instance] = self.backend
        self.config = {"instance": instance, "token": "${KIT_MEM_TOKEN}"}
        self.env = {"KIT_MEM_TOKEN": token, "KIT_MEM_SHORT": self.SHORT}
        self.secrets = (token, self.SHORT)
        self.invalid_configs = (
            ({"instance": instance}, "token"),
            ({"instance": instance, "token": "${KIT_MEM_SHORT}"}, "token"),
            ({**self.config, "max_batch": 0}, "max_batch"),
        )

    async def seed(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.backend.records[key] = {"name": f"Kit {key}", "points": 10}

    def backend_calls(self) -> int:
        return self.backend.calls

    async def slow(self, seconds: float) -> None:
        self.backend.slow(seconds)

    async def dead(self) -> None:
        self.backend.down = True

    async def alive(self) -> None:
        self.backend.down = False
        self.backend.slow(0)

    async def sample_event(self) -> CloudEvent:
        return CloudEvent(type="kit.sample", source="urn:kit", data={"points": 5}, subject=self.new_key())

    async def effects(self, event_id: str) -> int:
        return self.backend.applied.get(event_id, 0)


# Entry-point name -> class, for the dist-info the test writes (`kit-mem` is the good one).
ADAPTERS: dict[str, type] = {
    "kit-mem": MemoryAdapter,
    "kit-mem-no-consume": NoConsume,
    "kit-mem-per-key-fetch": PerKeyFetch,
    "kit-mem-poisoned": Poisoned,
    "kit-mem-not-idempotent": NotIdempotent,
    "kit-mem-batch-twice": BatchTwice,
    "kit-mem-forgets-history": ForgetsHistory,
    "kit-mem-echoes-secret": EchoesSecretInConfigError,
    "kit-mem-logs-secret": LogsSecret,
    "kit-mem-dead-is-healthy": DeadIsHealthy,
    "kit-mem-keeps-erased": KeepsErased,
    "kit-mem-counts-every-period": CountsEveryPeriod,
}
