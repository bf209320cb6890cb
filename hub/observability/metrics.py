"""Prometheus metrics, all named `hub_…`, and the small function API the hub records them through.

Cheap on the hot paths: one metric operation per event, each label set resolved once (`.labels()` is
cached in a plain dict per metric, see `_Children`), label values bounded (operation names and error
codes are capped per process; everything else comes from the mapping: systems, queues, flows).

Several hub processes (`hub serve --workers N`): prometheus-client's multiprocess mode. `hub serve`
makes a fresh folder and names it in PROMETHEUS_MULTIPROC_DIR before the workers start (`prepare_dir`);
every process writes its values there (memory-mapped files) and whichever process answers a scrape
sums them all (`exposition`). Gauges keep the highest value among live processes (`livemax`); the files
of processes that died are marked dead (`reap_dead`) on every sampling round.

Read by the /metrics endpoint (hub.api.metrics), by the separate listener on HUB_METRICS_PORT
(`serve_port`) and by anything in the hub that wants a number (`value`, e.g. the /ops page).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from hub.observability import logs, tracing

if TYPE_CHECKING:
    from hub.events import CloudEvent
    from hub.model import Lead
    from hub.ports import DeliveryOutcome

T = TypeVar("T")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Latency buckets (seconds): a cached answer is well under a millisecond, a slow system seconds.
FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SLOW = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

# Label values a caller chooses (operation names) are capped: past this many distinct values in a
# process, new ones are counted as OTHER. Unnamed operations are ANONYMOUS.
MAX_OPERATIONS = 200
MAX_CODES = 64
ANONYMOUS = "(anonymous)"
TIMED_OUT = 0.8  # a failed call that took this share of the system's timeout counts as a timeout
OTHER = "(other)"
_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,99}$")

# --- the metrics --------------------------------------------------------------------------------

GRAPHQL_SECONDS = Histogram(
    "hub_graphql_operation_duration_seconds",
    "GraphQL operations executed, by operation name and type, and how long each took",
    ["operation", "type"],
    buckets=FAST,
)
GRAPHQL_ERRORS = Counter(
    "hub_graphql_errors_total", "Errors in GraphQL answers, by operation name and extensions.code",
    ["operation", "code"],
)
ANSWER_CACHE = Counter(
    "hub_answer_cache_requests_total",
    "HTTP GraphQL requests looked up in the whole-answer cache: hit (answered from it) or miss",
    ["result"],
)
READ_CACHE = Counter(
    "hub_read_cache_requests_total",
    "Reads looked up in the hub's read caches (profile: a system's translated record; decision: CM's "
    "NBAs), hit or miss",
    ["cache", "system", "result"],
)
SYSTEM_CALLS = Counter(
    "hub_system_calls_total", "Calls the hub made to a system, by outcome: ok, error or timeout",
    ["system", "call", "outcome"],
)
SYSTEM_SECONDS = Histogram(
    "hub_system_call_duration_seconds", "How long a system took to answer a call (any outcome)",
    ["system", "call"], buckets=FAST,
)
BREAKER = Gauge(
    "hub_system_breaker_state",
    "A system's circuit breaker: 0 closed, 1 half-open, 2 open (adapters with a breaker)",
    ["system"], multiprocess_mode="livemax",
)
BUS_PUBLISHED = Counter(
    "hub_bus_published_total",
    "Messages the bus confirmed, by routing key (the event type; a batch flow's pack: its queue)",
    ["routing_key"],
)
BUS_DELIVERED = Counter(
    "hub_bus_delivered_total", "Events applied by a queue's consumer (handler returned)", ["queue"]
)
BUS_REDELIVERED = Counter(
    "hub_bus_redelivered_total", "Messages whose handler failed and that are delivered again later",
    ["queue"],
)
BUS_DEAD = Counter("hub_bus_dead_letters_total", "Messages moved to the dead-letter queue", ["queue"])
OUTBOX_BACKLOG = Gauge(
    "hub_outbox_backlog", "Events in the outbox not yet published", multiprocess_mode="livemax"
)
OUTBOX_LAG = Gauge(
    "hub_outbox_relay_lag_seconds", "Age of the oldest event the relay has not published yet (0: none)",
    multiprocess_mode="livemax",
)
OUTBOX_RELAYED = Counter("hub_outbox_relayed_total", "Events the outbox relay published")
FLOW_RUNS = Counter("hub_flow_runs_total", "Batch flow runs, by outcome: ok or failed", ["flow", "outcome"])
FLOW_EVENTS = Counter("hub_flow_events_delivered_total", "Events delivered by batch flow runs", ["flow"])
NBA_SECONDS = Histogram(
    "hub_nba_decision_duration_seconds",
    "How long an answer waited for CM's next best actions, by outcome: decided, fallback (over the "
    "NBA budget) or error",
    ["outcome"], buckets=FAST,
)
LEADS = Counter(
    "hub_leads_total",
    "Leads by outbound channel and what happened to them: PLANNED, SENT, FAILED, RETRY (handed back "
    "for a later try), RESPONDED",
    ["channel", "status"],
)


class _Children:
    """`metric.labels(*values)` resolved once per label set: a plain dict lookup afterwards."""

    __slots__ = ("_metric", "_seen")

    def __init__(self, metric: Any):
        self._metric = metric
        self._seen: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._seen.get(values)
        if child is None:
            child = self._seen[values] = self._metric.labels(*values)
        return child


class _Bounded:
    """A caller-chosen label value, kept only while fewer than `cap` distinct ones were seen."""

    __slots__ = ("_cap", "_seen")

    def __init__(self, cap: int):
        self._cap = cap
        self._seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if not value:
            return ANONYMOUS
        if value in self._seen:
            return value
        if len(self._seen) >= self._cap or not _NAME.match(value):
            return OTHER
        self._seen.add(value)
        return value


_graphql = _Children(GRAPHQL_SECONDS)
_graphql_errors = _Children(GRAPHQL_ERRORS)
_operation_name = _Bounded(MAX_OPERATIONS)
_code = _Bounded(MAX_CODES)
_answer_hit = ANSWER_CACHE.labels("hit")
_answer_miss = ANSWER_CACHE.labels("miss")
_reads = _Children(READ_CACHE)
_calls = _Children(SYSTEM_CALLS)
_call_seconds = _Children(SYSTEM_SECONDS)
_published = _Children(BUS_PUBLISHED)
_delivered = _Children(BUS_DELIVERED)
_redelivered = _Children(BUS_REDELIVERED)
_dead = _Children(BUS_DEAD)
_flow_runs = _Children(FLOW_RUNS)
_flow_events = _Children(FLOW_EVENTS)
_nba = _Children(NBA_SECONDS)
_leads = _Children(LEADS)
_breaker = _Children(BREAKER)

# --- recording (one call per event from the hub's code) ------------------------------------------


def operation_label(name: str | None) -> str:
    """The label an operation is counted under: its name, ANONYMOUS, or OTHER past the cap."""
    return _operation_name(name)


def graphql_operation(operation: str, kind: str, seconds: float, codes: Iterable[str] = ()) -> None:
    """One GraphQL operation (`operation` from `operation_label`), and the codes of its errors."""
    _graphql(operation, kind).observe(seconds)
    for code in codes:
        _graphql_errors(operation, _code(code)).inc()


def answer_cache(hit: bool) -> None:
    (_answer_hit if hit else _answer_miss).inc()


def read_cache(cache: str, system: str, hits: int, misses: int) -> None:
    """A batch of look-ups in one of the hub's read caches."""
    if hits:
        _reads(cache, system, "hit").inc(hits)
    if misses:
        _reads(cache, system, "miss").inc(misses)


async def system_call(system: str, call: str, awaitable: Awaitable[T], timeout: float | None = None) -> T:
    """Await a call to a system, counted by outcome and timed; traced when tracing is on. A failure is a
    `timeout` when it is a TimeoutError or took most of the system's `timeout` (an adapter that bounds
    its own calls reports its time-out in its own words, a little before the hub's bound)."""
    token = logs.SYSTEM.set(system)
    span = tracing.system_span(system, call) if tracing.ENABLED else None
    started = time.perf_counter()
    outcome = "error"
    try:
        result = await awaitable
        outcome = "ok"
        return result
    except TimeoutError:
        outcome = "timeout"
        raise
    finally:
        took = time.perf_counter() - started
        if outcome == "error" and timeout and took >= TIMED_OUT * timeout:
            outcome = "timeout"
        _call_seconds(system, call).observe(took)
        _calls(system, call, outcome).inc()
        if span is not None:
            tracing.end_span(span, outcome)
        logs.SYSTEM.reset(token)


def breaker_state(system: str, state: str | None) -> None:
    _breaker(system).set({"half-open": 1, "open": 2}.get(str(state), 0))


def published(routing_key: str, count: int = 1) -> None:
    if count:
        _published(routing_key).inc(count)


def published_events(events: Sequence[CloudEvent], outcomes: Sequence[object | None]) -> None:
    """What a bus confirmed of `publish_many`: per event type, those whose outcome is None."""
    counts: dict[str, int] = {}
    for event, outcome in zip(events, outcomes, strict=False):
        if outcome is None:
            counts[event.type] = counts.get(event.type, 0) + 1
    for routing_key, count in counts.items():
        _published(routing_key).inc(count)


def delivered(queue: str, events: int = 1) -> None:
    if events:
        _delivered(queue).inc(events)


def redelivered(queue: str) -> None:
    _redelivered(queue).inc()


def dead_lettered(queue: str) -> None:
    _dead(queue).inc()


def relayed(count: int) -> None:
    if count:
        OUTBOX_RELAYED.inc(count)


def outbox(backlog: int, lag_seconds: float) -> None:
    OUTBOX_BACKLOG.set(backlog)
    OUTBOX_LAG.set(lag_seconds)


def flow_run(flow: str, ok: bool, events: int = 0) -> None:
    _flow_runs(flow, "ok" if ok else "failed").inc()
    if events:
        _flow_events(flow).inc(events)


async def nba_decision(awaitable: Awaitable[T]) -> T:
    """Time the wait for CM's NBAs: `decided`, `fallback` (None: past the budget) or `error`."""
    started = time.perf_counter()
    outcome = "error"
    try:
        result = await awaitable
        outcome = "fallback" if result is None else "decided"
        return result
    finally:
        _nba(outcome).observe(time.perf_counter() - started)


def leads(channel: str, status: str, count: int = 1) -> None:
    if count:
        _leads(str(channel), str(status)).inc(count)


def leads_planned(planned: Iterable[Lead]) -> None:
    counts: dict[str, int] = {}
    for lead in planned:
        counts[str(lead.channel)] = counts.get(str(lead.channel), 0) + 1
    for channel, count in counts.items():
        leads(channel, "PLANNED", count)


def leads_settled(channel: str, outcomes: Iterable[DeliveryOutcome]) -> None:
    """Delivery outcomes of a batch (hub.ports DeliveryOutcome: sent, temporary)."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        status = "SENT" if outcome.sent else "RETRY" if outcome.temporary else "FAILED"
        counts[status] = counts.get(status, 0) + 1
    for status, count in counts.items():
        leads(channel, status, count)


# --- reading ------------------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def registry() -> CollectorRegistry:
    """What a scrape reads: every process's values in multiprocess mode, this process's otherwise."""
    folder = multiprocess_dir()
    if folder is None:
        return REGISTRY
    summed = CollectorRegistry()
    multiprocess.MultiProcessCollector(summed, path=folder)
    return summed


def exposition_sync() -> bytes:
    return generate_latest(registry())


async def exposition() -> tuple[bytes, str]:
    """The text exposition format (reads files in multiprocess mode: off the event loop)."""
    body = await asyncio.to_thread(exposition_sync) if multiprocess_dir() else exposition_sync()
    return body, CONTENT_TYPE_LATEST


def value(name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels` (e.g. `value("hub_bus_dead_letters_total",
    queue="hub.flow.x")`); 0 when none. For pages and tests, not for hot paths."""
    total = 0.0
    for family in registry().collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


# --- several processes ----------------------------------------------------------------------------


def prepare_dir() -> str | None:
    """For `hub serve --workers N`, before the workers start: a fresh multiprocess folder, named in the
    environment the workers inherit. Returns the folder to remove afterwards (None when one was given:
    then it is used as it is, emptied of nothing)."""
    if multiprocess_dir():
        return None
    folder = tempfile.mkdtemp(prefix="hub-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    return folder


def remove_dir(folder: str | None) -> None:
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get(MULTIPROC_ENV) == folder:
            del os.environ[MULTIPROC_ENV]


def reap_dead() -> list[int]:
    """Mark the processes whose files are in the multiprocess folder but that are gone as dead (their
    live gauges stop counting; their counters stay in the sums). Returns their pids."""
    folder = multiprocess_dir()
    if folder is None:
        return []
    pids = set()
    for path in glob.glob(os.path.join(folder, "gauge_live*_*.db")):
        with contextlib.suppress(ValueError):
            pids.add(int(path.rsplit("_", 1)[1][:-3]))
    dead = [pid for pid in sorted(pids) if not _alive(pid)]
    for pid in dead:
        multiprocess.mark_process_dead(pid, folder)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the separate listener (HUB_METRICS_PORT) -----------------------------------------------------


async def serve_port(host: str, port: int) -> asyncio.Server:
    """GET /metrics on its own port, without credentials: for an internal network only. Several hub
    processes may each call this for the same port (SO_REUSEPORT): whichever the kernel picks answers
    with the sum of all."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            method, _, rest = head.partition(b" ")
            path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
            if method not in (b"GET", b"HEAD"):
                status, body, kind = b"405 Method Not Allowed", b"GET only\n", "text/plain"
            elif path != b"/metrics":
                status, body, kind = b"404 Not Found", b"see /metrics\n", "text/plain"
            else:
                body, kind = await exposition()
                status = b"200 OK"
            head = (
                b"HTTP/1.1 " + status + b"\r\ncontent-type: " + kind.encode() + b"\r\ncontent-length: "
                + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
            )
            writer.write(head if method == b"HEAD" else head + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port, reuse_port=True)
