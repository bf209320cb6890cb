"""Side-by-side benchmarks: each case runs a variant and its baseline interleaved in one process,
and prints the ratio. Run: `make bench` (or `.venv/bin/python bench/run.py [--rounds N] [--only NAME,…]`).

Every hub is measured as it runs in production (bench/auth.py): authentication required, an API key with
every scope on every request, the rate limiter on (too high to refuse); a refused request stops the run.

Not a test: it asserts nothing. Results worth keeping go to bench/RESULTS.md with the command.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable

import auth
import httpx
import strawberry

from hub.api.app import create_app
from hub.api.context import Context
from hub.api.schema import Mutation, Query, Subscription, build_schema
from hub.config import Settings
from hub.demo import load_demo
from hub.roles import PROFILE_SOURCE
from hub.runtime import Hub

Op = Callable[[], Awaitable[object]]


async def timed(op: Op, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await op()
    return (time.perf_counter() - start) / n


async def side_by_side(name: str, variant: Op, baseline: Op, rounds: int, n: int) -> None:
    """Alternate variant and baseline so drift on the machine hits both alike; report medians."""
    await variant()
    await baseline()
    v, b = [], []
    for _ in range(rounds):
        v.append(await timed(variant, n))
        b.append(await timed(baseline, n))
    mv, mb = statistics.median(v), statistics.median(b)
    print(f"{name:<58} {mv * 1e3:8.3f} ms  vs {mb * 1e3:8.3f} ms   ratio {mb / mv:5.2f}x")


async def micro(rounds: int) -> None:
    """The in-process cases: one hub, asked through its ASGI app (and its schema, for the document cache)."""
    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub(Settings(database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", **auth.SETTINGS))
        await hub.start()
        await load_demo(hub)
        await hub.settle()
        token = await auth.create_key_in(hub)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(hub=hub)), base_url="http://b",
                                   headers=auth.headers(token))
        refused = await client.post("/graphql", json={"query": "{ __typename }"},
                                    headers={"Authorization": ""})
        assert refused.status_code == 401, f"without a credential: HTTP {refused.status_code}, not 401"

        async def gql(query: str, variables: dict | None = None) -> dict:
            r = await client.post("/graphql", json={"query": query, "variables": variables or {}})
            body = r.json()
            auth.check(r.status_code, body)
            assert "errors" not in body, body
            return body["data"]

        ids = []
        for i in range(10):
            data = await gql('mutation($e: String!) { startContact(input: {channel: WEBSITE, identification: '
                             '{email: $e}}) { customer { id } } }', {"e": f"bench{i}@example.com"})
            ids.append(data["startContact"]["customer"]["id"])
        many = "query(" + ", ".join(f"$c{i}: ID!" for i in range(10)) + ") { " + " ".join(
            f"c{i}: customer(id: $c{i}) {{ name emails segments {{ id }} offerHistory {{ offerId shown }} }}"
            for i in range(10)) + " }"
        variables = {f"c{i}": cid for i, cid in enumerate(ids)}
        systems = list(hub.systems.all(PROFILE_SOURCE))

        async def cached() -> object:
            return await gql(many, variables)

        async def uncached() -> object:
            hub.cache.invalidate(ids, systems)
            return await gql(many, variables)

        print(f"rounds={rounds}; variant vs baseline (median per call); ratio = baseline / variant")
        await side_by_side("10 customers per query: TTL cache hit vs miss", cached, uncached, rounds, 20)

        # Document caching: the same schema with and without parser/validation caches.
        plain = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
        with_cache = build_schema()
        # The key's caller, as the HTTP layer would have authenticated it.
        ctx = Context(hub, await hub.security.authn.principal(auth.bearer(token)))

        async def execute(schema: strawberry.Schema) -> object:
            result = await schema.execute("{ offers { id title topics channels } }", context_value=ctx)
            assert not result.errors, result.errors
            return result

        async def run_cached() -> object:
            return await execute(with_cache)

        async def run_plain() -> object:
            return await execute(plain)

        await side_by_side("offers query: parsed-document cache vs none", run_cached, run_plain, rounds, 200)

        started = await gql('mutation { startContact(input: {channel: WEBSITE, identification: '
                            '{email: "events@example.com"}}) { contact { id } } }')
        contact = started["startContact"]["contact"]["id"]
        record = ("mutation($c: ID!, $e: [ContactEventInput!]!) { "
                  "recordContactEvents(contactId: $c, events: $e) { accepted } }")
        ten = [{"type": "INTEREST_SHOWN", "topic": "savings"}] * 10

        async def batched() -> object:
            return await gql(record, {"c": contact, "e": ten})

        async def one_by_one() -> object:
            for e in ten:
                await gql(record, {"c": contact, "e": [e]})
            return None

        await side_by_side("10 contact events: one call vs ten calls", batched, one_by_one, rounds, 3)
        await client.aclose()
        await hub.close()


async def main(rounds: int, only: set[str] | None = None) -> None:
    # The benchmarks with a target, each across processes (the hub as `hub serve`), in the order;
    # their verdicts last. bench/ is the script's folder, first on sys.path.
    import batchflow
    import contact
    import fanout
    import freshness
    import history
    import outbound
    import peer_gateway
    import pipeline
    import throughput
    import workers

    benchmarks = {
        "view-throughput": throughput.run, "view-fanout": lambda: fanout.run(rounds),
        "event-pipeline": pipeline.run, "nba-freshness": freshness.run, "start-contact": contact.run,
        "batch-flow": batchflow.run, "outbox-history": history.run, "workers": workers.run,
        "peer-gateway": peer_gateway.run, "outbound-throughput": outbound.run,
    }
    unknown = (only or set()) - {"micro", *benchmarks}
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; known: micro, {', '.join(benchmarks)}")
    if only is None or "micro" in only:
        await micro(rounds)
    verdicts = []
    for name, bench in benchmarks.items():
        if only is not None and name not in only:
            continue
        started = time.perf_counter()
        for line in await bench():
            if line.startswith("bench "):
                verdicts.append(line)
            else:
                print(line, flush=True)
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    print()
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", help="comma-separated: micro (the in-process cases) and/or benchmark "
                        "names (view-throughput, start-contact, …); default: all")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, set(args.only.split(",")) if args.only else None))
