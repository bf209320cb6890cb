"""The acceptance kit: every adapter package runs it against itself (Airbyte-style).

Subclass `AdapterKit` in your adapter's tests and supply a function-scoped `harness` fixture; pytest
collects the kit's test methods in your class::

    import pytest_asyncio
    from hub.ports.testing import AdapterKit, BaseHarness

    class LoyaltyHarness(BaseHarness):
        entry_point = "loyalty"                       # your name in markiting_hub.adapters
        config = {"base_url": "...", "api_key": "${LOYALTY_API_KEY}"}
        env = {"LOYALTY_API_KEY": "kit-secret-4711"}  # set by the kit before the config is read
        secrets = ("kit-secret-4711",)
        ...                                           # seed, slow, dead, alive, effects (below)

    @pytest_asyncio.fixture
    async def harness():
        async with fake_loyalty_system() as system:   # a real server playing the system
            yield LoyaltyHarness(system)

    class TestLoyalty(AdapterKit):
        pass

The Harness protocol (`Harness`; `BaseHarness` gives the defaults):

- `entry_point`: the adapter's entry-point name; the kit builds it the way the hub does: a mapping file
  naming it, the registry's config validation (`${ENV}` interpolation, file:line errors), the port
  check, an `AdapterContext` with the mapping's timeout.
- `system`, `timeout`: the system's name in that mapping and its `timeout_seconds` (`ctx.timeout`).
- `config`: a valid config block; may contain `${VAR}` for the variables in `env`.
- `env`: environment variables the kit sets for the test; `secrets`: values that must never appear in
  output, logs, errors or reprs.
- `engine`: the hub's store as the adapter reaches it (built-in systems share it: give it through a
  `TcpProxy`, so `slow` and `dead` reach it). None: the kit makes a throwaway SQLite store; an
  external system ignores the `tx` it gets from there.
- `new_key()`: a fresh key the system is read by; `seed(keys)`: put one record per key into the
  backend (profile sources); `backend_calls()`: how many calls the backend has served so far, or None
  when it cannot count.
- `slow(seconds)`: the backend answers `seconds` late; `dead()`: it refuses connections; `alive()`:
  fast and reachable again. `ProxiedHarness` gives all three when the adapter reaches its backend
  through `self.proxy`, a `hub.ports.proxy.TcpProxy`.
- `sample_event()`: an event the adapter applies with one visible effect (event consumers);
  `effects(event_id)`: how many times the backend applied that event.
- `invalid_configs`: (config block, field the error must name) pairs, e.g. ({"api_key": "x"},
  "base_url"); a dotted field names a nested one.

What the kit checks (each check fails on an adapter that breaks it; tests/kit/test_kit_catches.py
proves it):

- the class declares its ports and has their methods as coroutines; it builds through the registry;
- fetch([k1, unknown, k2, k1]) returns exactly k1 and k2, as mappings, in one backend call;
- a slow backend surfaces through `hub.core.calls.call` as SystemUnavailable naming the system, at the
  timeout, and the adapter answers correctly afterwards (cancellation leaves no poisoned connection);
- the same event consumed twice, each time in its own transaction, has one effect; so has a batch
  holding it twice, twice (for an adapter with the optional `consume_batch`);
- a bad config is a MappingError naming the field with file and line, and without the secret;
- secrets appear nowhere: not in stdout/stderr, logs (DEBUG), errors, reprs or check details, through
  build, start, check, fetch, consume, a dead backend and bad configs;
- check() reports a dead backend within a bound (Health(ok=False) or AdapterError), ok when alive;
- a request registry keeps each request with every status it got, oldest first; reads by request id
  and by customer (newest first) leave out what is unknown;
- a privacy handler (when its config sets it up) exports a customer as JSON-able data, erases it twice
  (a redelivery, each in its own transaction) without an error, and a profile source no longer gives
  the erased customer's record.

The kit only tests the ports an adapter declares: a test of an undeclared port is skipped, with the
reason. Skipped is not failed: an adapter need not implement every port. ContactRegistry,
DecisionEngine, BackOffice, LeadManager and OutboundChannel are checked for their methods only.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import traceback
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import pytest_asyncio
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config.loader import Loc, Located, MappingError, Problem, load_located, validate
from hub.config.mapping import HubMapping
from hub.config.settings import Settings
from hub.core.calls import call
from hub.core.errors import SystemUnavailable
from hub.events import CloudEvent
from hub.ports import (
    AdapterError,
    BatchEventConsumer,
    CampaignCount,
    CustomerRequest,
    EventConsumer,
    FunnelCount,
    Health,
    LeadReports,
    NotSupported,
    OfferReports,
    Period,
    PrivacyHandler,
    PrivacySubject,
    ProfileSource,
    RequestCount,
    RequestKind,
    RequestRegistry,
    RequestReports,
    RequestStatus,
    SegmentSize,
    StatusChange,
    ports_of,
    utcnow,
)
from hub.ports.proxy import TcpProxy
from hub.registry import adapter_factories, build_systems, component_of, validate_config
from hub.store.db import create_engine, migrate

T = TypeVar("T")
log = logging.getLogger(__name__)

# How long check() may take: what /healthz waits (hub.api.health.HEALTH_TIMEOUT) before it says "down".
CHECK_BOUND = 5.0
# A slow backend answers this many timeouts late (at least SLOW_FLOOR s): the timeout must surface
# before half of that, a margin no busy CI machine can eat. Surfacing more than OVERRUN s after the
# bound is only warned about: SQLAlchemy's asyncpg adapter closes a cancelled connection gracefully
# for up to 2 s (shielded), and that is not the adapter's fault.
SLOW_FACTOR, SLOW_FLOOR, OVERRUN = 20.0, 10.0, 1.0
LIFECYCLE = ("start", "check", "close")


class Harness(Protocol):
    """What an adapter package tells the kit about its adapter and how to drive its backend (see the
    module docstring)."""

    entry_point: str
    system: str
    timeout: float
    config: Mapping[str, Any]
    env: Mapping[str, str]
    secrets: Sequence[str]
    engine: AsyncEngine | None
    invalid_configs: Sequence[tuple[Mapping[str, Any], str]]

    def new_key(self) -> str: ...

    async def seed(self, keys: Sequence[str]) -> None: ...

    def backend_calls(self) -> int | None: ...

    async def slow(self, seconds: float) -> None: ...

    async def dead(self) -> None: ...

    async def alive(self) -> None: ...

    async def sample_event(self) -> CloudEvent: ...

    async def effects(self, event_id: str) -> int: ...


class BaseHarness:
    """Defaults for a Harness: override what your adapter needs (the kit fails with a hint when it
    needs something you did not give)."""

    entry_point: str = ""
    system: str = "kit"
    timeout: float = 1.0
    config: Mapping[str, Any] = {}
    env: Mapping[str, str] = {}
    secrets: Sequence[str] = ()
    engine: AsyncEngine | None = None
    invalid_configs: Sequence[tuple[Mapping[str, Any], str]] = ()

    def new_key(self) -> str:
        return f"kit-{uuid.uuid4().hex[:12]}"

    async def seed(self, keys: Sequence[str]) -> None:
        raise NotImplementedError("the adapter is a ProfileSource: the harness must seed(keys) records")

    def backend_calls(self) -> int | None:
        return None

    async def slow(self, seconds: float) -> None:
        raise NotImplementedError("the harness must make the backend slow (e.g. TcpProxy.slow)")

    async def dead(self) -> None:
        raise NotImplementedError("the harness must make the backend dead (e.g. TcpProxy.cut)")

    async def alive(self) -> None:
        raise NotImplementedError("the harness must bring the backend back (TcpProxy.restore, slow(0))")

    async def sample_event(self) -> CloudEvent:
        raise NotImplementedError("the adapter is an EventConsumer: the harness must give a sample_event")

    async def effects(self, event_id: str) -> int:
        raise NotImplementedError("the adapter is an EventConsumer: the harness must count effects")


class ProxiedHarness(BaseHarness):
    """A harness whose backend is reached through a TcpProxy (`self.proxy`): slow, dead and alive
    come for free, and work for any backend that speaks TCP."""

    proxy: TcpProxy

    async def slow(self, seconds: float) -> None:
        self.proxy.slow(seconds)

    async def dead(self) -> None:
        await self.proxy.cut()

    async def alive(self) -> None:
        self.proxy.restore()
        self.proxy.slow(0)


class Kit:
    """One test's view of the adapter: built from a mapping file, the way the hub builds it."""

    def __init__(self, harness: Harness, store: AsyncEngine, folder: Path):
        self.harness = harness
        self.store = store  # where the kit opens the `tx` it hands to consume()
        self.path = folder / "hub.yaml"
        self.answer_bound = max(10 * harness.timeout, 10.0)  # a healthy backend answers well within
        self._built: list[Any] = []

    def adapter_class(self) -> type:
        ep = adapter_factories().get(self.harness.entry_point)
        if ep is None:
            pytest.fail(
                f"no adapter {self.harness.entry_point!r} in entry-point group markiting_hub.adapters: "
                "is the package installed (pip install -e .)?"
            )
        loaded: type = ep.load()
        return loaded

    def write(self, config: Mapping[str, Any]) -> Located:
        h = self.harness
        system = {"adapter": h.entry_point, "timeout_seconds": h.timeout, "config": dict(config)}
        self.path.write_text(yaml.safe_dump({"systems": {h.system: system}}, sort_keys=False))
        return load_located(self.path)

    def config_loc(self, field: str = "") -> Loc:
        parts = [int(p) if p.isdigit() else p for p in field.split(".") if p]
        return ("systems", self.harness.system, "config", *parts)

    def build(self, config: Mapping[str, Any] | None = None) -> Any:
        """The adapter as `hub.registry.build_systems` makes it (MappingError for a bad config)."""
        located = self.write(self.harness.config if config is None else config)
        mapping = validate(located, HubMapping)
        settings = Settings(mappings_dir=self.path.parent)
        adapter = build_systems(mapping, located, settings, self.store).adapters[self.harness.system]
        self._built.append(adapter)
        return adapter

    def validated_config(self) -> Any:
        located = self.write(self.harness.config)
        problems: list[Problem] = []
        raw = located.data["systems"][self.harness.system]["config"]
        config = validate_config(self.adapter_class(), raw, self.config_loc(), located, problems)
        if problems:
            raise MappingError(problems)
        return config

    async def started(self) -> Any:
        adapter = self.build()
        await self.bounded(adapter.start(), "start()")
        return adapter

    async def bounded(self, awaitable: Awaitable[T], what: str, seconds: float | None = None) -> T:
        """A call on a healthy backend: its own errors surface as they are, a hang fails the test."""
        limit = seconds or self.answer_bound
        timer = asyncio.timeout(limit)
        try:
            async with timer:
                return await awaitable
        except TimeoutError:
            if timer.expired():
                pytest.fail(f"{what} did not answer within {limit:g}s on a healthy backend")
            raise

    def needs(self, port: type) -> None:
        if port not in ports_of(self.adapter_class()):
            pytest.skip(
                f"{self.harness.entry_point} does not declare {port.__name__}: the kit only tests "
                "declared ports"
            )

    async def close(self) -> None:
        for adapter in self._built:
            try:
                async with asyncio.timeout(CHECK_BOUND):
                    await adapter.close()
            except Exception:
                log.warning("closing %s failed", type(adapter).__name__, exc_info=True)


def _kit_request(customer_id: str, kind: RequestKind, at: datetime) -> CustomerRequest:
    return CustomerRequest(
        id=f"req_kit_{uuid.uuid4().hex[:12]}",
        customer_id=customer_id,
        contact_id=f"con_kit_{uuid.uuid4().hex[:12]}",
        kind=kind,
        subject=f"kit {kind.value.lower()}",
        details=None,
        status=RequestStatus.OPEN,
        created_at=at,
        history=(StatusChange(RequestStatus.OPEN, at, "WEBSITE"),),
    )


def port_methods(port: type) -> list[str]:
    return [n for n, v in vars(port).items() if not n.startswith("_") and inspect.isfunction(v)]


def missing_methods(adapter_class: type) -> list[str]:
    """Declared ports' methods (and the lifecycle) the class lacks or has as plain functions."""
    wanted = [("Adapter", m) for m in LIFECYCLE]
    wanted += [(p.__name__, m) for p in ports_of(adapter_class) for m in port_methods(p)]
    return [
        f"{port}.{m}"
        for port, m in wanted
        if not inspect.iscoroutinefunction(getattr(adapter_class, m, None))
    ]


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(seconds):
        return await awaitable


async def building(kit: Kit, config: Mapping[str, Any]) -> Any:
    return kit.build(config)


async def outcome(awaitable: Awaitable[Any]) -> str:
    """What a call shows its caller: the result's repr, or the whole exception with its chain."""
    try:
        return repr(await awaitable)
    except Exception as exc:
        return "".join(traceback.format_exception(exc))


class AdapterKit:
    """The kit's tests; subclass it as `class Test<YourAdapter>(AdapterKit)` next to a `harness`
    fixture. Not collected itself: pytest collects classes named Test*."""

    @pytest_asyncio.fixture
    async def kit(
        self, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> AsyncIterator[Kit]:
        for name, value in harness.env.items():
            monkeypatch.setenv(name, value)
        store, own = harness.engine, None
        if store is None:
            store = own = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'kit-store.db'}")
        kit = Kit(harness, store, tmp_path)
        if own is not None:
            component = component_of(harness.entry_point, kit.adapter_class())
            if component is not None:  # an external adapter with tables of its own
                await migrate(own, [component])
        try:
            yield kit
        finally:
            await kit.close()
            if own is not None:
                await own.dispose()

    @pytest.mark.asyncio
    async def test_declares_ports_and_builds_through_the_registry(self, kit: Kit) -> None:
        adapter_class = kit.adapter_class()
        ports = ports_of(adapter_class)
        assert ports, f"{adapter_class.__qualname__} declares no ports: set `ports = (ProfileSource, ...)`"
        missing = missing_methods(adapter_class)
        assert not missing, f"{adapter_class.__qualname__} lacks these async methods: {', '.join(missing)}"
        adapter = kit.build()
        assert adapter.system == kit.harness.system, "the adapter must keep ctx.system as `system`"
        for port in ports:
            assert isinstance(adapter, port), f"the built adapter is not a {port.__name__}"

    @pytest.mark.asyncio
    async def test_fetch_batches_and_leaves_out_unknown_keys(self, kit: Kit) -> None:
        kit.needs(ProfileSource)
        h = kit.harness
        adapter = await kit.started()
        k1, k2, unknown = h.new_key(), h.new_key(), h.new_key()
        await h.seed([k1, k2])
        before = h.backend_calls()
        records = await kit.bounded(adapter.fetch([k1, unknown, k2, k1]), "fetch()")
        after = h.backend_calls()
        assert isinstance(records, Mapping), f"fetch() returned {type(records).__name__}, not a mapping"
        assert set(records) == {k1, k2}, f"fetch([k1, unknown, k2, k1]) returned keys {sorted(records)}"
        for key in (k1, k2):
            assert isinstance(records[key], Mapping), f"the record of {key} is not a mapping"
        if before is not None and after is not None:
            assert after - before == 1, (
                f"fetch() of 4 keys made {after - before} backend calls: a ProfileSource reads a batch "
                "in one call"
            )

    @pytest.mark.asyncio
    async def test_timeout_names_the_system_then_answers_again(self, kit: Kit) -> None:
        kit.needs(ProfileSource)
        h = kit.harness
        adapter = await kit.started()
        stuck, later = [h.new_key(), h.new_key()], [h.new_key(), h.new_key()]
        await h.seed(stuck + later)
        # Warm up first: a serving hub has open connections, and those are what a cancelled call
        # can leave half-read.
        warm = await kit.bounded(adapter.fetch(stuck + later), "fetch()")
        assert set(warm) == {*stuck, *later}, f"fetch() of seeded keys returned {sorted(warm)}"
        slow = max(SLOW_FACTOR * h.timeout, SLOW_FLOOR)
        await h.slow(slow)
        loop = asyncio.get_running_loop()
        started = loop.time()
        failures = await asyncio.gather(
            *(call(h.system, h.timeout, "fetch", adapter.fetch([k])) for k in stuck), return_exceptions=True
        )
        elapsed = loop.time() - started
        await h.alive()
        for failure in failures:
            assert isinstance(failure, SystemUnavailable), f"expected SystemUnavailable, got {failure!r}"
            assert failure.details.get("system") == h.system and repr(h.system) in str(failure), str(failure)
        assert elapsed < slow / 2, (
            f"a {h.timeout:g}s timeout surfaced after {elapsed:.1f}s (the backend answered {slow:g}s "
            "late): the adapter holds on instead of giving way to cancellation"
        )
        if elapsed > h.timeout + OVERRUN:
            warnings.warn(
                f"{h.entry_point}: a {h.timeout:g}s timeout surfaced after {elapsed:.1f}s: cancelling a "
                "call takes long (a cleanup that waits for the slow backend?)",
                stacklevel=1,
            )
        # Each later question must get its own answer, not the late answer to a cancelled one.
        for _ in range(3):
            answers = await kit.bounded(
                asyncio.gather(*(adapter.fetch([k]) for k in later)), "fetch() after a timeout"
            )
            for key, records in zip(later, answers, strict=True):
                assert set(records) == {key}, (
                    f"after a timeout, fetch([{key}]) returned {sorted(records)}: a cancelled call left "
                    "a connection behind that answers an old question"
                )

    @pytest.mark.asyncio
    async def test_same_event_twice_has_one_effect(self, kit: Kit) -> None:
        kit.needs(EventConsumer)
        h = kit.harness
        adapter = await kit.started()
        event = await h.sample_event()
        assert await h.effects(event.id) == 0, "the harness counts an effect before the event was consumed"
        for attempt in (1, 2):
            # A redelivery comes in a transaction of its own, as the bus delivers it.
            async with kit.store.begin() as tx:
                changed = await kit.bounded(adapter.consume(tx, event), "consume()")
            assert isinstance(changed, Collection) and all(isinstance(c, str) for c in changed), (
                f"consume() must return the golden ids it changed, got {changed!r}"
            )
            effects = await h.effects(event.id)
            assert effects == 1, f"after consuming {event.id} {attempt}x the backend shows {effects} effects"

    @pytest.mark.asyncio
    async def test_a_batch_has_the_effect_of_its_events_once(self, kit: Kit) -> None:
        kit.needs(EventConsumer)
        adapter = await kit.started()
        if not isinstance(adapter, BatchEventConsumer):
            pytest.skip("the adapter has no consume_batch (optional: events come one by one)")
        h = kit.harness
        event = await h.sample_event()
        for attempt in (1, 2):
            async with kit.store.begin() as tx:
                changed = await kit.bounded(adapter.consume_batch(tx, [event, event]), "consume_batch()")
            assert isinstance(changed, Collection) and all(isinstance(c, str) for c in changed), (
                f"consume_batch() must return the golden ids it changed, got {changed!r}"
            )
            effects = await h.effects(event.id)
            assert effects == 1, (
                f"after a batch holding {event.id} twice, {attempt}x, the backend shows {effects} effects"
            )

    @pytest.mark.asyncio
    async def test_requests_keep_their_status_history(self, kit: Kit) -> None:
        kit.needs(RequestRegistry)
        adapter = await kit.started()
        customer, other = kit.harness.new_key(), kit.harness.new_key()
        now = utcnow()
        older = _kit_request(customer, RequestKind.QUOTE, now - timedelta(minutes=5))
        newer = _kit_request(customer, RequestKind.COMPLAINT, now)
        for request in (older, newer):
            async with kit.store.begin() as tx:
                await kit.bounded(adapter.add_request(tx, request), "add_request()")
        moved = StatusChange(RequestStatus.IN_PROGRESS, now + timedelta(seconds=1), "kit", "picked up")
        async with kit.store.begin() as tx:
            await kit.bounded(adapter.add_status(tx, older.id, moved), "add_status()")
        async with kit.store.begin() as tx:
            held = await kit.bounded(adapter.locked_request(tx, older.id), "locked_request()")
            unknown = await kit.bounded(adapter.locked_request(tx, "req_kit_unknown"), "locked_request()")
        assert held is not None and unknown is None, "locked_request(): the request, None when unknown"
        assert held.status is RequestStatus.IN_PROGRESS, f"add_status() must set the status: {held}"
        assert [c.status for c in held.history] == [RequestStatus.OPEN, RequestStatus.IN_PROGRESS], (
            f"the history must keep every status, oldest first: {held.history}"
        )
        assert held.history[-1].by == "kit" and held.history[-1].note == "picked up"
        assert (held.customer_id, held.contact_id) == (customer, older.contact_id), "ids kept as given"
        assert (held.kind, held.subject) == (older.kind, older.subject)

        found = await kit.bounded(adapter.requests([older.id, "req_kit_unknown", newer.id]), "requests()")
        assert set(found) == {older.id, newer.id}, f"requests() must leave out unknown ids: {sorted(found)}"
        by_customer = await kit.bounded(adapter.requests_of([customer, other]), "requests_of()")
        assert set(by_customer) == {customer}, "requests_of() must leave out customers without requests"
        assert [r.id for r in by_customer[customer]] == [newer.id, older.id], "newest first"

    @pytest.mark.asyncio
    async def test_erasure_forgets_the_customer_and_export_is_json(self, kit: Kit) -> None:
        kit.needs(PrivacyHandler)
        adapter = await kit.started()
        serves = getattr(adapter, "serves", None)
        if serves is not None and not serves(PrivacyHandler):
            pytest.skip("the harness's config does not set up privacy requests (they are NOT_SUPPORTED)")
        h = kit.harness
        readable = isinstance(adapter, ProfileSource) and (serves is None or serves(ProfileSource))
        key = h.new_key()
        if readable:
            await h.seed([key])
        # The kit's customer is known by one key, which is also its id in the hub.
        subject = PrivacySubject(request_id=f"prv_kit_{uuid.uuid4().hex[:12]}", customer_id=key, key=key)
        async with kit.store.begin() as tx:
            part = await kit.bounded(adapter.export(tx, subject), "export()")
        assert isinstance(part, Mapping), f"export() returned {type(part).__name__}, not a mapping"
        json.dumps(part, default=str)  # JSON, with times as text: the hub puts it in one document
        if readable:
            assert part, "export() of a customer the system holds gave nothing"
        for attempt in (1, 2):  # a redelivery comes in a transaction of its own
            async with kit.store.begin() as tx:
                detail = await kit.bounded(adapter.erase(tx, subject), "erase()")
            assert detail is None or isinstance(detail, str), (
                f"erase() #{attempt} returned {detail!r}: a short text for the receipt, or None"
            )
        if readable:
            records = await kit.bounded(adapter.fetch([key]), "fetch() after erase()")
            assert key not in records, "after erase() the system still gives the customer's record"

    @pytest.mark.asyncio
    async def test_bad_config_is_reported_cleanly(self, kit: Kit) -> None:
        h = kit.harness
        if not h.invalid_configs:
            if getattr(kit.adapter_class(), "Config", None) is None:
                pytest.skip(f"{h.entry_point} has no Config model and the harness gives no invalid configs")
            pytest.fail("the adapter has a Config model: give the harness `invalid_configs`")
        for config, field in h.invalid_configs:
            with pytest.raises(MappingError) as info:
                kit.build(config)
            error = info.value
            wanted = load_located(kit.path).problem(kit.config_loc(field), "")
            named = [p for p in error.problems if p.field == wanted.field]
            assert named, f"a bad {field!r} must be reported as {wanted.field}; got: {error}"
            assert (named[0].file, named[0].line) == (wanted.file, wanted.line), (
                f"{wanted.field} is at {wanted.file}:{wanted.line}, the error says {named[0]}"
            )
            for secret in h.secrets:
                assert secret not in str(error), f"the error for a bad {field!r} shows a secret"

    @pytest.mark.asyncio
    async def test_secrets_never_appear(
        self, kit: Kit, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> None:
        h = kit.harness
        if not h.secrets:
            pytest.skip("the harness names no secrets")
        caplog.set_level(logging.DEBUG)
        ports = ports_of(kit.adapter_class())
        seen: list[tuple[str, str]] = []
        adapter = kit.build()
        config = kit.validated_config()
        seen += [("repr(adapter)", repr(adapter)), ("str(adapter)", str(adapter))]
        seen += [("str(config)", str(config)), ("repr(config)", repr(config))]
        seen.append(("start()", await outcome(kit.bounded(adapter.start(), "start()"))))
        seen.append(("check()", await outcome(kit.bounded(adapter.check(), "check()", CHECK_BOUND))))
        key = h.new_key()
        event = await h.sample_event() if EventConsumer in ports else None
        if ProfileSource in ports:
            await h.seed([key])
            seen.append(("fetch()", await outcome(kit.bounded(adapter.fetch([key]), "fetch()"))))
        if event is not None:
            seen.append(("consume()", await outcome(self._consume(kit, adapter, event))))
        await h.dead()
        try:
            seen.append(("check() when dead", await outcome(within(CHECK_BOUND, adapter.check()))))
            if ProfileSource in ports:
                failed = call(h.system, h.timeout, "fetch", adapter.fetch([key]))
                seen.append(("fetch() when dead", await outcome(failed)))
            if event is not None:
                failed = call(h.system, h.timeout, "consume", self._consume(kit, adapter, event))
                seen.append(("consume() when dead", await outcome(failed)))
        finally:
            await h.alive()
        for bad, field in h.invalid_configs:
            seen.append((f"bad config {field}", await outcome(building(kit, bad))))
        out, err = capsys.readouterr()
        seen += [("stdout", out), ("stderr", err), ("logs", caplog.text)]
        seen += [(f"log record of {r.name}", r.getMessage()) for r in caplog.records]
        leaks = sorted({where for where, text in seen for secret in h.secrets if secret in text})
        assert not leaks, f"a secret appears in: {', '.join(leaks)}"

    @staticmethod
    async def _consume(kit: Kit, adapter: Any, event: CloudEvent) -> Collection[str]:
        async with kit.store.begin() as tx:
            changed: Collection[str] = await adapter.consume(tx, event)
            return changed

    @pytest.mark.asyncio
    async def test_reports_are_typed_rows_and_keep_to_the_period(self, kit: Kit) -> None:
        """The optional report ports (OfferReports, LeadReports, RequestReports): typed rows, read
        outside any transaction, nothing from a period long before the system existed; NotSupported
        when the system cannot report (the hub then answers partially, naming it)."""
        adapter = await kit.started()
        asks: list[tuple[str, Callable[[Period], Awaitable[Any]], type, bool]] = []
        if isinstance(adapter, OfferReports):
            asks += [("funnel()", lambda p: adapter.funnel(p), FunnelCount, True),
                     ("segment_sizes()", lambda p: adapter.segment_sizes(), SegmentSize, False)]
        if isinstance(adapter, LeadReports):
            asks.append(("campaign_results()", lambda p: adapter.campaign_results(p), CampaignCount, True))
        if isinstance(adapter, RequestReports):
            asks.append(("request_counts()", lambda p: adapter.request_counts(p), RequestCount, True))
        if not asks:
            pytest.skip("the adapter has no report port (optional: its numbers are left out of reports)")
        ancient = Period(datetime(1990, 1, 1, tzinfo=UTC), datetime(1990, 1, 2, tzinfo=UTC))
        if isinstance(adapter, RequestReports) and isinstance(adapter, RequestRegistry):
            # A request made now: counted in a period holding now, not in one long before.
            async with kit.store.begin() as tx:
                request = _kit_request(kit.harness.new_key(), RequestKind.COMPLAINT, utcnow())
                await kit.bounded(adapter.add_request(tx, request), "add_request()")
            counted = await kit.bounded(adapter.request_counts(Period()), "request_counts()")
            assert any((c.kind, c.status) == (RequestKind.COMPLAINT, RequestStatus.OPEN) and c.count >= 1
                       for c in counted), f"request_counts() leaves out the request just made: {counted!r}"
        for what, ask, row_type, by_period in asks:
            try:
                rows = await kit.bounded(ask(Period()), what)
            except NotSupported:
                continue
            assert isinstance(rows, Sequence) and all(isinstance(r, row_type) for r in rows), (
                f"{what} must return a sequence of {row_type.__name__}, got {rows!r}"
            )
            if by_period:
                old = await kit.bounded(ask(ancient), what)
                assert list(old) == [], f"{what} for a day in 1990 returned {old!r}"

    @pytest.mark.asyncio
    async def test_check_reports_a_dead_backend(self, kit: Kit) -> None:
        h = kit.harness
        adapter = await kit.started()
        health = await kit.bounded(adapter.check(), "check()", CHECK_BOUND)
        assert isinstance(health, Health) and health.ok, f"check() on a healthy backend: {health!r}"
        await h.dead()
        try:
            timer = asyncio.timeout(CHECK_BOUND)
            try:
                async with timer:
                    dead = await adapter.check()
            except TimeoutError:
                if not timer.expired():
                    raise
                pytest.fail(f"check() on a dead backend did not answer within {CHECK_BOUND:g}s")
            except AdapterError:
                pass  # also a clear "down", naming the system
            except Exception as exc:
                pytest.fail(
                    f"check() on a dead backend raised {type(exc).__name__}: return Health(ok=False, detail) "
                    "or raise AdapterError"
                )
            else:
                assert isinstance(dead, Health) and not dead.ok, f"check() on a dead backend said {dead!r}"
        finally:
            await h.alive()
        # A hub polls /healthz: the system must be reported up again once it is back (soon, not at once).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CHECK_BOUND
        while True:
            health = await outcome_health(adapter)
            if health.ok or loop.time() > deadline:
                break
            await asyncio.sleep(0.2)
        assert health.ok, f"check() after the backend came back: {health!r}"


async def outcome_health(adapter: Any) -> Health:
    try:
        async with asyncio.timeout(CHECK_BOUND):
            health: Health = await adapter.check()
            return health
    except Exception as exc:
        return Health(False, type(exc).__name__)


__all__ = ["CHECK_BOUND", "AdapterKit", "BaseHarness", "Harness", "Kit"]
