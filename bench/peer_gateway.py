"""peer-gateway: the same unified customer query over the same five REST systems (bench/systems.py, 20 ms
each), served by the hub and by a peer: GraphQL Mesh composing the five systems into a supergraph, served
by Hive Gateway (bench/peer/: mesh.config.ts, gateway.config.ts, pinned in package.json and its lock).

Processes: the five systems (one process), and per mode one hub (`hub serve`, the systems mapped as in
bench/fanout.py; as in production, bench/auth.py: an API key on every request, the rate limiter on) and
one Hive Gateway (one node process, NODE_ENV=production; as configured in bench/peer/, no authentication),
loaded alternately by wrk (2 threads, 16 connections, POST of each side's query for one customer,
rotating over 20 customers), `rounds` times, after a warm-up of each:
- cold: the hub with HUB_CACHE_TTL_SECONDS=0.000001 (every view reads every system), the gateway
  without a response cache;
- cached: the hub on its default cache (30 s), the gateway with its response cache (TTL 30 s).

Both answers are checked to hold the five systems' values before anything is measured, and the calls
the systems got per request are counted during the runs (cold: 1 per system per request on both sides).
The ratio is hub req/s ÷ Hive Gateway req/s (medians), the lower of the two modes. Target >= 1.0.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import auth
from fanout import DELAY, START, SYSTEMS, _mapping
from procs import HUB, free_port, start, stop, up

TARGET = 1.0
CONNECTIONS = 16
CUSTOMERS = 20
WARMUP_SECONDS = 2
CACHE_TTL_SECONDS = 30
HERE = Path(__file__).resolve().parent
PEER = HERE / "peer"
BIN = PEER / "node_modules" / ".bin"
HUB_QUERY = "query($id: ID!) { customer(id: $id) { id attributes } }"
PEER_QUERY = (
    "query($id: ID!) { customer(id: $id) { id " + " ".join(f"{s} {{ value }}" for s in SYSTEMS) + " } }"
)
MODES = {  # mode: (hub's HUB_CACHE_TTL_SECONDS, gateway's PEER_RESPONSE_CACHE_TTL_MS; 0 = no cache)
    "cold": ("0.000001", 0),
    "cached": (str(CACHE_TTL_SECONDS), CACHE_TTL_SECONDS * 1000),
}


def _wrk(url: str, script: Path, seconds: int) -> tuple[float, int]:
    """req/s and the number of requests of one wrk run."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    refused = auth.wrk_refused(out)
    if refused is not None:
        raise RuntimeError(refused)
    if found is None or total is None:
        raise RuntimeError(f"wrk: {out}")
    return float(found.group(1)), int(total.group(1))


def _script(path: Path, query: str, ids: list[str], token: str | None) -> Path:
    """A wrk script that POSTs the query, one customer after another (with the API key, if given)."""
    bodies = ", ".join(json.dumps(json.dumps({"query": query, "variables": {"id": i}})) for i in ids)
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        + (auth.wrk_lua(token) if token else "")
        + f"local bodies = {{{bodies}}}\n"
        "local requests = {}\n"
        "local n = 0\n"
        "init = function(args)\n"
        "  for i, body in ipairs(bodies) do requests[i] = wrk.format(nil, nil, nil, body) end\n"
        "end\n"
        "request = function()\n"
        "  n = n % #requests + 1\n"
        "  return requests[n]\n"
        "end\n"
    )
    return path


def _npm_ci() -> str | None:
    """Install bench/peer's pinned packages if they are not there; why not, if they can't be."""
    if shutil.which("node") is None:
        return "node is not installed (the peer runs on Node.js)"
    if (BIN / "hive-gateway").exists() and (BIN / "mesh-compose").exists():
        return None
    if shutil.which("npm") is None:
        return "npm is not installed (to install the peer's packages: npm ci in bench/peer)"
    done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        return f"npm ci in bench/peer failed: {done.stderr.strip()[-500:]}"
    return None


async def _gql(session: aiohttp.ClientSession, url: str, query: str, variables: dict,
               headers: dict[str, str] | None = None) -> dict:
    async with session.post(f"{url}/graphql", json={"query": query, "variables": variables},
                            headers=headers) as r:
        body = await r.json(content_type=None)
    auth.check(r.status, body, url)
    assert "errors" not in body, body["errors"]
    return body["data"]


async def _check(session: aiohttp.ClientSession, hub: str, peer: str, customer: str, token: str) -> None:
    """Both sides answer the five systems' values for the customer (so a broken side can't look fast)."""
    want = {s: f"{s}-{customer}" for s in SYSTEMS}
    hub_data = (await _gql(session, hub, HUB_QUERY, {"id": customer}, auth.headers(token)))["customer"]
    assert {s: hub_data["attributes"].get(s) for s in SYSTEMS} == want, hub_data
    peer_data = (await _gql(session, peer, PEER_QUERY, {"id": customer}))["customer"]
    assert {s: (peer_data[s] or {}).get("value") for s in SYSTEMS} == want, peer_data


async def _calls(session: aiohttp.ClientSession, systems: str, reset: bool) -> int:
    """The calls the systems got since the last reset (the most any one system got)."""
    if reset:
        async with session.post(f"{systems}/reset"):
            return 0
    async with session.get(f"{systems}/stats") as r:
        return max((await r.json()).values())


def _compose(supergraph: Path, systems_url: str) -> None:
    """The supergraph, composed here: the systems' port is only known now."""
    subprocess.run(
        [str(BIN / "mesh-compose"), "-c", str(PEER / "mesh.config.ts"), "-o", str(supergraph)], cwd=PEER,
        env={**os.environ, "SYSTEMS_URL": systems_url}, check=True, capture_output=True, timeout=120,
    )


async def run(rounds: int = 3, seconds: int = 5) -> list[str]:
    if shutil.which("wrk") is None:
        return ["bench peer-gateway: skipped: wrk is not installed (apt-get install wrk; make bench does)"]
    why_not = await asyncio.to_thread(_npm_ci)
    if why_not is not None:
        return [f"bench peer-gateway: skipped: {why_not}"]
    systems_port = free_port()
    systems_url = f"http://127.0.0.1:{systems_port}"
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        await asyncio.to_thread(_compose, Path(tmp) / "supergraph.graphql", systems_url)
        _mapping(Path(tmp) / "mappings", systems_url)
        # Both modes' hubs share one store: one key, made before the first hub starts.
        token = await auth.create_key(_hub_env(Path(tmp), MODES["cold"][0]))
        systems = start([sys.executable, str(HERE / "systems.py"), "--port", str(systems_port), "--delay",
                         str(DELAY)])
        ids: list[str] = []  # created by the first mode's hub; the second one has the same database
        try:
            async with aiohttp.ClientSession() as session:
                await up(session, f"{systems_url}/health", systems)
                for mode, ttls in MODES.items():
                    measured[mode] = await _mode(session, Path(tmp), systems_url, ttls, ids, rounds, seconds,
                                                 token)
        finally:
            stop(systems)
    lines, ratios, parts = [], [], []
    for mode, (rps, calls) in measured.items():
        h, p = statistics.median(rps["hub"]), statistics.median(rps["hive"])
        ratios.append(h / p)
        unit = " req/s" if mode == "cold" else ""
        parts.append(f"{mode} hub {h:,.0f}{unit} ÷ hive {p:,.0f}{unit} = {h / p:.2f}")
        lines.append(
            f"unified customer view over 5 systems at {DELAY * 1e3:.0f} ms, {mode}, {CONNECTIONS} "
            f"connections: hub {h:,.0f} req/s, Hive Gateway (GraphQL Mesh) {p:,.0f} req/s (rounds: hub "
            f"{[round(x) for x in rps['hub']]}, hive {[round(x) for x in rps['hive']]}; calls per "
            f"system per request: hub {max(calls['hub']):.2f}, hive {max(calls['hive']):.2f})"
        )
    ratio = min(ratios)
    lines.append(
        f"bench peer-gateway: ratio={ratio:.2f} target={TARGET} {'PASS' if ratio >= TARGET else 'FAIL'} "
        f"({parts[0]}; {parts[1]})"
    )
    return lines


def _hub_env(tmp: Path, hub_ttl: str) -> dict[str, str]:
    return auth.env({
        **os.environ,
        "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
        "HUB_MAPPINGS_DIR": str(tmp / "mappings"),
        "HUB_CACHE_TTL_SECONDS": hub_ttl,
        "HUB_RELOAD_ON_CHANGE": "false",
    })


async def _mode(
    session: aiohttp.ClientSession, tmp: Path, systems_url: str, ttls: tuple[str, int], ids: list[str],
    rounds: int, seconds: int, token: str,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """One mode: its own hub and gateway, loaded alternately; req/s and system calls per request."""
    hub_ttl, peer_ttl_ms = ttls
    hub_port, peer_port = free_port(), free_port()
    hub_url, peer_url = f"http://127.0.0.1:{hub_port}", f"http://127.0.0.1:{peer_port}"
    hub_env = _hub_env(tmp, hub_ttl)
    peer_env = {**os.environ, "NODE_ENV": "production", "LOG_LEVEL": "warn",
                "PEER_RESPONSE_CACHE_TTL_MS": str(peer_ttl_ms)}
    hub = start([HUB, "serve", "--port", str(hub_port), "--log-level", "warning"], hub_env)
    peer = None
    try:
        peer = start([str(BIN / "hive-gateway"), "supergraph", str(tmp / "supergraph.graphql"), "--host",
                      "127.0.0.1", "--port", str(peer_port), "-c", str(PEER / "gateway.config.ts")], peer_env)
        await up(session, f"{hub_url}/healthz", hub)
        await up(session, f"{peer_url}/readiness", peer)
        await auth.assert_required(session, f"{hub_url}/graphql", token)
        if not ids:
            for i in range(CUSTOMERS):
                started = await _gql(session, hub_url, START, {"e": f"peer{i}@example.com"},
                                     auth.headers(token))
                ids.append(started["startContact"]["customer"]["id"])
        await _check(session, hub_url, peer_url, ids[0], token)
        sides = {
            "hub": (hub_url, _script(tmp / "hub.lua", HUB_QUERY, ids, token)),
            "hive": (peer_url, _script(tmp / "hive.lua", PEER_QUERY, ids, None)),
        }
        for url, script in sides.values():
            await asyncio.to_thread(_wrk, f"{url}/graphql", script, WARMUP_SECONDS)
        rps: dict[str, list[float]] = {side: [] for side in sides}
        calls: dict[str, list[float]] = {side: [] for side in sides}
        for _ in range(rounds):  # alternating, so drift on the machine hits both alike
            for side, (url, script) in sides.items():
                await _calls(session, systems_url, reset=True)
                side_rps, total = await asyncio.to_thread(_wrk, f"{url}/graphql", script, seconds)
                rps[side].append(side_rps)
                calls[side].append(await _calls(session, systems_url, reset=False) / total)
        await _check(session, hub_url, peer_url, ids[-1], token)
        return rps, calls
    finally:
        stop(hub, peer)


if __name__ == "__main__":
    for line in asyncio.run(run()):
        print(line)
