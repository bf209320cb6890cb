"""view-fanout: a cold customer view over five REST systems (each answers in 20 ms), and a query of
100 customers. The systems run in a process of their own (bench/systems.py).

Measures, side by side in one run:
- the p50 of a cold view (every system read, nothing cached) ÷ 20 ms, the systems' own latency
  (target <= 1.15: the systems are called concurrently, once each), and beside it a direct call to one
  system from the same process, so the HTTP client's own cost shows;
- the calls each system got for one query of 100 customers (target: exactly 1 each).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

from hub.api.app import create_app
from hub.config import SHIPPED_MAPPINGS, Settings
from hub.runtime import Hub

DELAY = 0.020
TARGET = 1.15
SYSTEMS = ("s1", "s2", "s3", "s4", "s5")
HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mapping(folder: Path, base: str) -> None:
    shutil.copytree(SHIPPED_MAPPINGS, folder, ignore=shutil.ignore_patterns("examples", "tests"))
    hub_yaml = folder / "hub.yaml"
    text = hub_yaml.read_text()
    systems = "".join(
        f"""  {s}:
    adapter: rest
    key: id
    timeout_seconds: 2
    config:
      base_url: {base}/{s}
      fetch:
        batch: {{path: "/customers?ids={{keys}}", records: data, key_field: id, max_batch: 200}}
      breaker: null
    profile:
      attributes.{s}: value
"""
        for s in SYSTEMS
    )
    hub_yaml.write_text(text.replace("\nsurvivorship:", f"\n{systems}survivorship:", 1))


async def run(rounds: int = 7) -> list[str]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, str(HERE / "systems.py"), "--port", str(port), "--delay", str(DELAY)]
    proc = subprocess.Popen(argv)  # noqa: ASYNC220 - started once, before the loop has work
    try:
        async with httpx.AsyncClient(base_url=base) as direct:
            for _ in range(100):
                try:
                    await direct.get("/health")
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp) / "mappings"
                _mapping(folder, base)
                hub = Hub(Settings(database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", mappings_dir=folder))
                await hub.start()
                try:
                    return await _measure(hub, direct, rounds)
                finally:
                    await hub.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _measure(hub: Hub, direct: httpx.AsyncClient, rounds: int) -> list[str]:
    from hub.model import Key, KeyKind

    ids = []
    for i in range(100):
        cid = await hub.contacts.import_customer([Key(KeyKind.EMAIL, f"fan{i}@example.com")], f"Fan {i}", {})
        assert cid is not None
        ids.append(cid)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(hub=hub)), base_url="http://b")
    one = 'query($id: ID!) { customer(id: $id) { name attributes unavailableSystems } }'

    async def cold_view(i: int) -> float:
        hub.cache.clear()
        started = time.perf_counter()
        body = (await client.post("/graphql", json={"query": one, "variables": {"id": ids[i % 100]}})).json()
        elapsed = time.perf_counter() - started
        attributes = body["data"]["customer"]["attributes"]
        assert "errors" not in body, body
        assert set(SYSTEMS) <= set(attributes), attributes
        return elapsed

    async def direct_call(i: int) -> float:
        started = time.perf_counter()
        await direct.get("/s1/customers", params={"ids": ids[i % 100]})
        return time.perf_counter() - started

    floor_session = aiohttp.ClientSession()

    async def floor(i: int) -> float:
        """The same five calls, concurrently, with a bare aiohttp client: the floor of any fan-out from
        this process on this machine, before GraphQL, the store and the merge."""

        async def one(system: str) -> None:
            url = f"{str(direct.base_url).rstrip('/')}/{system}/customers"
            async with floor_session.get(url, params={"ids": ids[i % 100]}) as r:
                await r.json()

        started = time.perf_counter()
        await asyncio.gather(*(one(s) for s in SYSTEMS))
        return time.perf_counter() - started

    await cold_view(0)
    await direct_call(0)
    await floor(0)
    views, calls, floors = [], [], []
    for r in range(rounds):  # interleaved, so drift on the machine hits all alike
        for i in range(20):
            views.append(await cold_view(r * 20 + i))
            calls.append(await direct_call(r * 20 + i))
            floors.append(await floor(r * 20 + i))
    await floor_session.close()
    p50, p50_direct, p50_floor = statistics.median(views), statistics.median(calls), statistics.median(floors)

    await direct.post("/reset")
    hub.cache.clear()
    many = "query($ids: [ID!]!) { customers(ids: $ids) { attributes } }"
    body = (await client.post("/graphql", json={"query": many, "variables": {"ids": ids}})).json()
    assert "errors" not in body, body.get("errors")
    per_system = (await direct.get("/stats")).json()
    await client.aclose()

    ratio = p50 / DELAY
    verdict = "PASS" if ratio <= TARGET and all(v == 1 for v in per_system.values()) else "FAIL"
    return [
        f"cold view over 5 systems at {DELAY * 1e3:.0f} ms: p50 {p50 * 1e3:.1f} ms, p90 "
        f"{statistics.quantiles(views, n=10)[-1] * 1e3:.1f} ms; one direct call to one system p50 "
        f"{p50_direct * 1e3:.1f} ms; five bare concurrent calls (aiohttp) p50 {p50_floor * 1e3:.1f} ms "
        f"(the floor ÷ 20 ms = {p50_floor / DELAY:.2f}; view ÷ floor = {p50 / p50_floor:.2f})",
        f"100 customers in one query: calls per system {per_system}",
        f"bench view-fanout: ratio={ratio:.2f} target={TARGET} {verdict} "
        f"(p50 {p50 * 1e3:.1f} ms ÷ {DELAY * 1e3:.0f} ms; calls per system for 100 customers: "
        f"{sorted(set(per_system.values()))})",
    ]


if __name__ == "__main__":
    for line in asyncio.run(run()):
        print(line)
