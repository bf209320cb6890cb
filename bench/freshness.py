"""nba-freshness: from the answer of recordContactEvents to the subscription's push of the re-ranked
list, while the hub takes 500 contact events/s, on RabbitMQ + PostgreSQL.

The hub runs as `hub serve` on a fresh database and bus namespace, as in production (bench/auth.py: an
API key on every request and in every subscription's connection_init, the rate limiter on); a load call
that fails or is refused stops the bench. `PROBES` customers each hold an NBA
subscription over graphql-transport-ws (the websockets client); `LOAD_CUSTOMERS` others take the
background load: calls of 10 events started at a fixed rate (open loop: a slow answer does not slow the
load down), 500 events/s with the probes' own. Every `PROBE_EVERY` seconds one probe customer (in turn)
reports one event; its latency is from the HTTP answer to the first push whose decision ids differ from
the last push before the event (CM applied it: a decision id carries CM's state version; default actions
pushed past the NBA budget do not count). A probe not pushed within 2 s counts as 2 s.

Ratio = 50 ms ÷ p99. Target >= 1 (p99 <= 50 ms).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import time

import aiohttp
import auth
import websockets
from procs import HUB, free_port, start, stop, up
from services import RABBITMQ_URL, fresh_database, fresh_namespace

BUDGET_MS = 50.0
EVENTS_PER_SECOND = 500
EVENTS_PER_CALL = 10
PROBES = 20
PROBE_EVERY = 0.05
LOAD_CUSTOMERS = 200
GIVE_UP = 2.0
START = """mutation($e: String!) { startContact(input: {channel: WEBSITE, identification: {email: $e}}) {
  contact { id } customer { id } nextBestActions { offerId } } }"""
RECORD = """mutation($c: ID!, $e: [ContactEventInput!]!) { recordContactEvents(contactId: $c, events: $e) {
  accepted } }"""
SUBSCRIBE = """subscription($id: ID!) { nextBestActions(customerId: $id, channel: WEBSITE) {
  offerId decisionId } }"""


async def _gql(session: aiohttp.ClientSession, url: str, query: str, variables: dict) -> dict:
    """One GraphQL call (the session sends the key); anything but 200 stops the bench."""
    async with session.post(url, json={"query": query, "variables": variables}) as r:
        body = await r.json(content_type=None)
    auth.check(r.status, body, url)
    if "errors" in body:
        raise RuntimeError(body["errors"])
    return body["data"]


class Probe:
    """One subscribed customer: its pushes, each with the time it arrived."""

    def __init__(self, customer: str, contact: str):
        self.customer, self.contact = customer, contact
        self.pushes: list[tuple[float, tuple[str, ...]]] = []
        self.pushed = asyncio.Event()

    async def listen(self, ws_url: str, token: str, ready: asyncio.Event) -> None:
        async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps(auth.connection_init(token)))
            ack = json.loads(await ws.recv())
            assert ack["type"] == "connection_ack", ack
            await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                      "payload": {"query": SUBSCRIBE, "variables": {"id": self.customer}}}))
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                    continue
                if message["type"] != "next":
                    raise RuntimeError(f"subscription: {message}")
                nbas = message["payload"]["data"]["nextBestActions"]
                self.pushes.append((time.perf_counter(), tuple(n["decisionId"] for n in nbas)))
                self.pushed.set()
                ready.set()


async def _latency(session: aiohttp.ClientSession, url: str, probe: Probe, topic: str) -> float:
    before = probe.pushes[-1][1]
    seen = len(probe.pushes)
    event = {"type": "INTEREST_SHOWN", "topic": topic}
    await _gql(session, url, RECORD, {"c": probe.contact, "e": [event]})
    answered = time.perf_counter()
    deadline = answered + GIVE_UP
    while time.perf_counter() < deadline:
        for at, ids in probe.pushes[seen:]:
            if ids != before and not any(i.startswith("fallback:") for i in ids):  # CM's own list
                return max(0.0, at - answered)
        seen = len(probe.pushes)
        probe.pushed.clear()
        try:
            await asyncio.wait_for(probe.pushed.wait(), deadline - time.perf_counter())
        except TimeoutError:
            break
    return GIVE_UP


async def run(seconds: float = 20.0) -> list[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    async with fresh_database() as database, fresh_namespace() as namespace:
        env = auth.env({**os.environ, "HUB_DATABASE_URL": database, "HUB_BROKER_URL": RABBITMQ_URL,
                        "HUB_BUS_NAMESPACE": namespace, "HUB_RELOAD_ON_CHANGE": "false"})
        token = await auth.create_key(env)
        hub = start([HUB, "serve", "--port", str(port), "--log-level", "warning"], env)
        listeners: list[asyncio.Task[None]] = []
        try:
            connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=2)
            async with aiohttp.ClientSession(connector=connector, headers=auth.headers(token)) as session:
                await up(session, f"http://127.0.0.1:{port}/healthz", hub)
                await auth.assert_required(session, url, token)
                load = []
                for i in range(LOAD_CUSTOMERS):
                    s = (await _gql(session, url, START, {"e": f"load{i}@example.com"}))["startContact"]
                    load.append((s["contact"]["id"], s["nextBestActions"][0]["offerId"]))
                probes = []
                for i in range(PROBES):
                    s = (await _gql(session, url, START, {"e": f"probe{i}@example.com"}))["startContact"]
                    probes.append(Probe(s["customer"]["id"], s["contact"]["id"]))
                ws_url = f"ws://127.0.0.1:{port}/graphql"
                for probe in probes:
                    ready = asyncio.Event()
                    listener = asyncio.create_task(probe.listen(ws_url, token, ready))
                    listeners.append(listener)
                    waiting = asyncio.ensure_future(ready.wait())
                    await asyncio.wait([listener, waiting], timeout=10, return_when=asyncio.FIRST_COMPLETED)
                    waiting.cancel()
                    if listener.done():  # refused (closed 4401/4429) or failed: say why
                        listener.result()
                        raise RuntimeError("a subscription ended before its first push")
                    if not ready.is_set():
                        raise RuntimeError("a subscription got no first push within 10 s")
                await asyncio.sleep(1.0)  # what CM applied of the set-up has been pushed

                stop_at = time.perf_counter() + 3.0 + seconds  # 3 s warm-up, then measured
                measure_from = stop_at - seconds
                calls: set[asyncio.Task[dict]] = set()
                load_failures: list[BaseException] = []

                def finished(task: asyncio.Task[dict]) -> None:
                    calls.discard(task)
                    failure = None if task.cancelled() else task.exception()
                    if failure is not None:
                        load_failures.append(failure)

                async def offered_load() -> None:
                    every = EVENTS_PER_CALL / (EVENTS_PER_SECOND - 1 / PROBE_EVERY)  # probes make the rest
                    at = time.perf_counter()
                    for n in itertools.count():
                        if at >= stop_at:
                            return
                        contact, offer = load[n % len(load)]
                        events = [{"type": "PROPOSITION_SHOWN", "offerId": offer} if k % 2 == 0
                                  else {"type": "INTEREST_SHOWN", "topic": f"t{k}"}
                                  for k in range(EVENTS_PER_CALL)]
                        task = asyncio.create_task(_gql(session, url, RECORD, {"c": contact, "e": events}))
                        calls.add(task)
                        task.add_done_callback(finished)
                        at += every
                        await asyncio.sleep(max(0.0, at - time.perf_counter()))

                async def probing() -> list[float]:
                    measured: list[float] = []
                    running: list[asyncio.Task[float]] = []
                    for n in itertools.count():
                        now = time.perf_counter()
                        if now >= stop_at:
                            break
                        probe = probes[n % len(probes)]
                        task = asyncio.create_task(_latency(session, url, probe, f"topic-{n % 7}"))
                        running.append(task)
                        if now >= measure_from:
                            task.add_done_callback(lambda t: measured.append(t.result()))
                        await asyncio.sleep(PROBE_EVERY)
                    await asyncio.gather(*running)
                    return measured

                _, latencies = await asyncio.gather(offered_load(), probing())
                await asyncio.gather(*calls, return_exceptions=True)  # their failures: load_failures
                if load_failures:
                    raise RuntimeError(f"{len(load_failures)} load calls failed or were refused, e.g. "
                                       f"{load_failures[0]!r}")
                if any(t.done() for t in listeners):  # a subscription that ended was not measured
                    for task in listeners:
                        if task.done():
                            task.result()
                    raise RuntimeError("a subscription ended during the run")
        finally:
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
            stop(hub)
    ms = sorted(x * 1e3 for x in latencies)
    p50, p99 = statistics.median(ms), statistics.quantiles(ms, n=100)[98]
    ratio = BUDGET_MS / p99
    return [
        f"NBA push after recordContactEvents at {EVENTS_PER_SECOND} events/s on PostgreSQL + RabbitMQ: "
        f"{len(ms)} probes, p50 {p50:.1f} ms, p90 {statistics.quantiles(ms, n=10)[8]:.1f} ms, "
        f"p99 {p99:.1f} ms, "
        f"max {ms[-1]:.1f} ms; not pushed within {GIVE_UP:.0f} s: {sum(1 for x in ms if x >= GIVE_UP * 1e3)}",
        f"bench nba-freshness: ratio={ratio:.2f} target=1.0 {'PASS' if ratio >= 1 else 'FAIL'} "
        f"(50 ms ÷ p99 {p99:.1f} ms at {EVENTS_PER_SECOND} events/s)",
    ]


if __name__ == "__main__":
    for line in asyncio.run(run()):
        print(line)
