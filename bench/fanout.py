"""view-fanout: a cold customer view over five REST systems (each answers in 20 ms), and a query of
100 customers. Three processes, as in production: the five systems (bench/systems.py), the hub
(`hub serve`, its cache TTL near zero so every view reads every system; as in production, bench/auth.py:
an API key on every request, the rate limiter on), and this one, the channel, which asks over HTTP.

Side by side in one run, from this process:
- the p50 of a cold view ÷ 20 ms (the systems' own latency), target <= 1.15: the systems are called
  concurrently, once each;
- beside it, the floor: the same five calls made concurrently straight to the systems with a bare
  aiohttp client, so what the hub adds shows apart from what any HTTP fan-out costs on this machine;
- and the floor of a service in the hub's place (bench/proxy.py): a plain ASGI app under the hub's server
  settings that makes the same five calls and answers, without GraphQL, authentication or resilience;
  what the hub adds beyond it is the hub's own cost;
- the calls each system got for one query of 100 customers (target: exactly 1 each).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import auth
import httpx
import yaml
from procs import HUB, free_port, start, stop, up

from hub.config import SHIPPED_MAPPINGS

DELAY = 0.020
TARGET = 1.15
SYSTEMS = ("s1", "s2", "s3", "s4", "s5")
HERE = Path(__file__).resolve().parent
START = (
    "mutation($e: String!) { startContact(input: {channel: WEBSITE, identification: {email: $e}}) "
    "{ customer { id } } }"
)
VIEW = "query($id: ID!) { customer(id: $id) { id attributes unavailableSystems } }"
MANY = "query($ids: [ID!]!) { customers(ids: $ids) { attributes } }"


def _mapping(folder: Path, base: str) -> None:
    """The shipped deployment with the five REST systems as the view's only profile sources: the view
    the benchmarks time is theirs (the built-in CRM and CM still play their roles)."""
    shutil.copytree(SHIPPED_MAPPINGS, folder, ignore=shutil.ignore_patterns("examples", "tests"))
    hub_yaml = folder / "hub.yaml"
    data = yaml.safe_load(hub_yaml.read_text())
    for name in ("crm", "cm"):  # here they keep their roles, not the view
        data["systems"][name].pop("profile", None)
    data["survivorship"] = {}
    for s in SYSTEMS:
        data["systems"][s] = {
            "adapter": "rest", "key": "id", "timeout_seconds": 2,
            "config": {
                "base_url": f"{base}/{s}",
                "fetch": {"batch": {"path": "/customers?ids={keys}", "records": "data", "key_field": "id",
                                    "max_batch": 200}},
                "breaker": None,
                # As many calls in flight as the benchmarks' callers: the default bulkhead (8 per
                # system) capped a cold view at 8 ÷ 20 ms = 400 per second, and the peer has none.
                "max_concurrency": 16,
            },
            "profile": {f"attributes.{s}": "value"},
        }
    hub_yaml.write_text(yaml.safe_dump(data, sort_keys=False))


async def run(rounds: int = 7) -> list[str]:
    systems_port, hub_port, proxy_port = free_port(), free_port(), free_port()
    systems_url = f"http://127.0.0.1:{systems_port}"
    hub_url = f"http://127.0.0.1:{hub_port}"
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mappings"
        _mapping(folder, systems_url)
        env = auth.env({
            **os.environ,
            "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "HUB_MAPPINGS_DIR": str(folder),
            "HUB_CACHE_TTL_SECONDS": "0.000001",  # every view reads every system: cold
            "HUB_RELOAD_ON_CHANGE": "false",
        })
        token = await auth.create_key(env)
        procs = [
            start([sys.executable, str(HERE / "systems.py"), "--port", str(systems_port), "--delay",
                   str(DELAY)]),
            start([HUB, "serve", "--port", str(hub_port), "--log-level", "warning"], env),
            start([sys.executable, str(HERE / "proxy.py"), "--port", str(proxy_port),
                   "--systems", systems_url]),
        ]
        try:
            async with aiohttp.ClientSession() as session:
                await up(session, f"{systems_url}/health", procs[0])
                await up(session, f"{hub_url}/healthz", procs[1])
                await up(session, f"{proxy_url}/healthz", procs[2])
                await auth.assert_required(session, f"{hub_url}/graphql", token)
                return await _measure(session, hub_url, systems_url, proxy_url, rounds, auth.headers(token))
        finally:
            stop(*procs)


async def _gql(session: aiohttp.ClientSession, url: str, query: str, variables: dict,
               headers: dict[str, str]) -> dict:
    """One GraphQL call to the hub at `url`, with the key in `headers`; anything but 200 stops the bench."""
    async with session.post(f"{url}/graphql", json={"query": query, "variables": variables},
                            headers=headers) as r:
        body = await r.json(content_type=None)
        auth.check(r.status, body, url)
    assert "errors" not in body, body["errors"]
    return body["data"]


async def _measure(session: aiohttp.ClientSession, hub: str, systems: str, proxy: str, rounds: int,
                   headers: dict[str, str]) -> list[str]:
    ids = []
    for i in range(100):
        started = await _gql(session, hub, START, {"e": f"fan{i}@example.com"}, headers)
        ids.append(started["startContact"]["customer"]["id"])

    async def view(i: int) -> float:
        started = time.perf_counter()
        data = await _gql(session, hub, VIEW, {"id": ids[i % 100]}, headers)
        elapsed = time.perf_counter() - started
        assert {f"s{n}" for n in range(1, 6)} <= set(data["customer"]["attributes"]), data
        return elapsed

    async def floor(i: int) -> float:
        async def one(system: str) -> None:
            async with session.get(f"{systems}/{system}/customers", params={"ids": ids[i % 100]}) as r:
                await r.json()

        started = time.perf_counter()
        await asyncio.gather(*(one(s) for s in SYSTEMS))
        return time.perf_counter() - started

    async def proxied(i: int) -> float:
        started = time.perf_counter()
        async with session.post(f"{proxy}/graphql", json={"variables": {"id": ids[i % 100]}}) as r:
            data = await r.json()
        elapsed = time.perf_counter() - started
        assert set(SYSTEMS) <= set(data["data"]["customer"]["attributes"]), data
        return elapsed

    plain = httpx.AsyncClient()

    async def httpx_floor(i: int) -> float:
        """The same five calls with httpx's own transport: why the REST adapter runs on aiohttp's."""
        started = time.perf_counter()
        await asyncio.gather(
            *(plain.get(f"{systems}/{s}/customers", params={"ids": ids[i % 100]}) for s in SYSTEMS)
        )
        return time.perf_counter() - started

    for i in range(10):
        await view(i)
        await floor(i)
        await httpx_floor(i)
        await proxied(i)
    views, floors, httpx_floors, proxies = [], [], [], []
    for r in range(rounds):  # interleaved, so drift on the machine hits all alike
        for i in range(20):
            views.append(await view(r * 20 + i))
            floors.append(await floor(r * 20 + i))
            httpx_floors.append(await httpx_floor(r * 20 + i))
            proxies.append(await proxied(r * 20 + i))
    await plain.aclose()
    p50, p50_floor = statistics.median(views), statistics.median(floors)
    p50_proxy = statistics.median(proxies)

    async with session.post(f"{systems}/reset"):
        pass
    await _gql(session, hub, MANY, {"ids": ids}, headers)
    async with session.get(f"{systems}/stats") as r:
        per_system = await r.json()

    ratio = p50 / DELAY
    verdict = "PASS" if ratio <= TARGET and all(v == 1 for v in per_system.values()) else "FAIL"
    return [
        f"cold view over 5 systems at {DELAY * 1e3:.0f} ms, over HTTP: p50 {p50 * 1e3:.1f} ms, p90 "
        f"{statistics.quantiles(views, n=10)[-1] * 1e3:.1f} ms; the same five calls straight from this "
        f"process (aiohttp) p50 {p50_floor * 1e3:.1f} ms (floor ÷ 20 ms = {p50_floor / DELAY:.2f}; "
        f"view ÷ floor = {p50 / p50_floor:.2f}); with httpx's own transport p50 "
        f"{statistics.median(httpx_floors) * 1e3:.1f} ms",
        f"a bare ASGI fan-out proxy in the hub's place (bench/proxy.py, same server): p50 "
        f"{p50_proxy * 1e3:.1f} ms "
        f"(÷ 20 ms = {p50_proxy / DELAY:.2f}; view ÷ proxy = {p50 / p50_proxy:.2f}: the hub's own cost)",
        f"100 customers in one query: calls per system {per_system}",
        f"bench view-fanout: ratio={ratio:.2f} target={TARGET} {verdict} "
        f"(p50 {p50 * 1e3:.1f} ms ÷ {DELAY * 1e3:.0f} ms; a bare fan-out proxy {p50_proxy / DELAY:.2f}; "
        f"calls per system for 100 customers: "
        f"{sorted(set(per_system.values()))})",
    ]


if __name__ == "__main__":
    for line in asyncio.run(run()):
        print(line)
