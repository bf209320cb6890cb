"""event-pipeline: contact events recorded over HTTP -> outbox -> RabbitMQ -> applied by CM, on
PostgreSQL, against raw aio-pika publishing (with confirms, each awaited) and consuming (with acks) the
same number of messages on the same broker.

The hub runs as `hub serve` on a fresh database and bus namespace, as in production (bench/auth.py: an
API key on every request, the rate limiter on). The channel (this process) starts a
contact for each of `CUSTOMERS` customers, then `CALLERS` callers report events in calls of
`EVENTS_PER_CALL` as fast as the hub answers, for `seconds`. Every second it samples what CM applied
(processed-message rows of destination cm) and the backlog (outbox unsent + queued). Sustained applied
events/s is measured over the window; the backlog must not grow while the load holds (its least-squares
slope under 5 % of the accepted rate). Hub and baseline alternate, `rounds` times.

Ratio = applied events/s ÷ raw msg/s (medians). Target >= 0.5, and no growing backlog.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import aiohttp
import asyncpg
import auth
from procs import HUB, free_port, start, stop, up
from services import RABBITMQ_URL, fresh_database, fresh_namespace, raw_publish_consume

TARGET = 0.5
CUSTOMERS = 100
CALLERS = 16
EVENTS_PER_CALL = 10
START = """mutation($e: String!) { startContact(input: {channel: WEBSITE, identification: {email: $e}}) {
  contact { id } nextBestActions { offerId } } }"""
RECORD = """mutation($c: ID!, $e: [ContactEventInput!]!) { recordContactEvents(contactId: $c, events: $e) {
  accepted } }"""
OPERATIONS = "{ operations { outboxBacklog queues { queue depth } } }"


async def _gql(session: aiohttp.ClientSession, url: str, query: str, variables: dict | None = None) -> dict:
    """One GraphQL call (the session sends the key); anything but 200 stops the bench."""
    async with session.post(url, json={"query": query, "variables": variables or {}}) as r:
        body = await r.json(content_type=None)
    auth.check(r.status, body, url)
    if "errors" in body:
        raise RuntimeError(body["errors"])
    return body["data"]


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


async def _hub_round(session: aiohttp.ClientSession, url: str, dsn: str, contacts: list[tuple[str, str]],
                     seconds: float) -> dict[str, float]:
    accepted = 0
    stop_at = time.perf_counter() + seconds

    async def caller(n: int) -> None:
        nonlocal accepted
        i = n
        while time.perf_counter() < stop_at:
            contact, offer = contacts[i % len(contacts)]
            events = [{"type": "PROPOSITION_SHOWN", "offerId": offer} if k % 2 == 0
                      else {"type": "INTEREST_SHOWN", "topic": f"topic-{k}"} for k in range(EVENTS_PER_CALL)]
            data = await _gql(session, url, RECORD, {"c": contact, "e": events})
            accepted += data["recordContactEvents"]["accepted"]
            i += CALLERS

    db = await asyncpg.connect(dsn)
    samples: list[tuple[float, int, int]] = []  # (t, applied, backlog)

    async def sample() -> None:
        t0 = time.perf_counter()
        while True:
            applied = await db.fetchval("SELECT count(*) FROM processed_messages WHERE destination = 'cm'")
            ops = (await _gql(session, url, OPERATIONS))["operations"]
            backlog = ops["outboxBacklog"] + sum(q["depth"] for q in ops["queues"])
            samples.append((time.perf_counter() - t0, applied, backlog))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample())
    try:
        await asyncio.gather(*(caller(n) for n in range(CALLERS)))
        await asyncio.sleep(0.5)
    finally:
        sampler.cancel()
    # Drained before anything else is measured (the baseline must not share the machine with it).
    for _ in range(600):
        ops = (await _gql(session, url, OPERATIONS))["operations"]
        if ops["outboxBacklog"] + sum(q["depth"] for q in ops["queues"]) == 0:
            break
        await asyncio.sleep(0.1)
    await db.close()
    # The first second is the ramp. On a loaded machine a sample can take over a second: a short round
    # (the warm-up) may get too few to leave it out, or only one, which measures no rate.
    window = samples[1:] if len(samples) > 2 else samples
    t_first, applied_first, _ = window[0]
    t_last, applied_last, _ = window[-1]
    span = t_last - t_first
    return {
        "accepted": accepted / seconds,
        "applied": (applied_last - applied_first) / span if span > 0 else 0.0,
        "backlog_slope": slope([(t, b) for t, _, b in window]),
        "backlog_end": window[-1][2],
        "applied_total": applied_last,
    }


async def run(rounds: int = 2, seconds: float = 12.0) -> list[str]:
    hub_port = free_port()
    url = f"http://127.0.0.1:{hub_port}/graphql"
    async with fresh_database() as database, fresh_namespace() as namespace:
        env = auth.env({**os.environ, "HUB_DATABASE_URL": database, "HUB_BROKER_URL": RABBITMQ_URL,
                        "HUB_BUS_NAMESPACE": namespace, "HUB_RELOAD_ON_CHANGE": "false"})
        token = await auth.create_key(env)
        hub = start([HUB, "serve", "--port", str(hub_port), "--log-level", "warning"], env)
        dsn = database.replace("postgresql+asyncpg", "postgresql")
        try:
            # Below the server's keep-alive (5 s): a connection idle through the baseline is not reused.
            connector = aiohttp.TCPConnector(limit=CALLERS + 4, keepalive_timeout=2)
            async with aiohttp.ClientSession(connector=connector, headers=auth.headers(token)) as session:
                await up(session, f"http://127.0.0.1:{hub_port}/healthz", hub)
                await auth.assert_required(session, url, token)
                contacts = []
                for i in range(CUSTOMERS):
                    started = (await _gql(session, url, START, {"e": f"pipe{i}@example.com"}))["startContact"]
                    contacts.append((started["contact"]["id"], started["nextBestActions"][0]["offerId"]))
                await _hub_round(session, url, dsn, contacts, 3.0)  # warm-up
                hubs, raws, raws_windowed = [], [], []
                body = b"x" * 700  # about a contact event's CloudEvent
                for _ in range(rounds):  # alternating, so drift on the machine hits both alike
                    hubs.append(await _hub_round(session, url, dsn, contacts, seconds))
                    count = max(2000, int(hubs[-1]["applied"] * 3))
                    raws.append(await raw_publish_consume(count, body))
                    raws_windowed.append(await raw_publish_consume(count, body, window=200))
        finally:
            stop(hub)
    applied = statistics.median(h["applied"] for h in hubs)
    accepted = statistics.median(h["accepted"] for h in hubs)
    raw = statistics.median(raws)
    growing = [h for h in hubs if h["backlog_slope"] > 0.05 * h["accepted"]]
    ratio = applied / raw
    verdict = "PASS" if ratio >= TARGET and not growing else "FAIL"
    return [
        f"event pipeline on PostgreSQL + RabbitMQ, {CALLERS} callers x {EVENTS_PER_CALL} events per call: "
        f"accepted {accepted:,.0f}/s, applied by CM {applied:,.0f}/s; backlog slopes "
        f"{[round(h['backlog_slope'], 1) for h in hubs]}/s, at the end {[h['backlog_end'] for h in hubs]}; "
        f"raw aio-pika publish (confirm each) + consume {raw:,.0f} msg/s, with 200 confirms in flight "
        f"{statistics.median(raws_windowed):,.0f} msg/s",
        f"bench event-pipeline: ratio={ratio:.2f} target={TARGET} {verdict} (applied {applied:,.0f}/s ÷ raw "
        f"{raw:,.0f} msg/s{'; backlog grows' if growing else ''})",
    ]


if __name__ == "__main__":
    for line in asyncio.run(run()):
        print(line)
