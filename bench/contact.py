"""start-contact: startContact at 16 concurrent callers on PostgreSQL (+ RabbitMQ), against a bare
Starlette endpoint that runs one INSERT … RETURNING in a transaction on the same database
(bench/bare_insert.py), both under uvicorn, loaded alternately by wrk; and the same load on the embedded
default (SQLite, in-process bus), where no request may take over 1 s.

Both hubs run as in production (bench/auth.py: an API key on every request, the rate limiter on); the
bare endpoint gets the same requests, key included, and ignores it.

The channel's call: identify the visitor by email (every other call a returning visitor, the rest new
ones), register the contact, answer with the customer's view and 3 NBAs.

Ratio = hub req/s ÷ bare req/s (medians). Target >= 0.25, and the embedded default's slowest request
under 1 s (wrk's max latency, no timeouts).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import auth
from procs import HUB, free_port, start, stop, up
from services import RABBITMQ_URL, fresh_database, fresh_namespace

TARGET = 0.25
CONNECTIONS = 16
HERE = Path(__file__).resolve().parent
QUERY = (
    "mutation($e: String!) { startContact(input: {channel: WEBSITE, identification: {email: $e}}) "
    "{ created contact { id } customer { id name segments { id } } nextBestActions { offerId decisionId } } }"
)
# Every thread numbers its visitors; odd calls come back as the visitor of 101 calls before (a visit
# long answered: the same visitor twice at once is not the load meant here).
SCRIPT = """
local counter = 0
local threads = {}
local headers = {["Content-Type"] = "application/json", ["Authorization"] = AUTHORIZATION}
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
function init(args)
  tid = wrk.thread:get("tid")
  n = 0
end
request = function()
  n = n + 1
  local v = n
  if n % 2 == 1 and n > 101 then v = n - 101 end
  local body = '{"query": QUERY, "variables": {"e": "v' .. RUN .. '-' .. tid .. '-' .. v .. '@example.com"}}'
  return wrk.format("POST", nil, headers, body)
end
"""


def _script(folder: Path, run: str, token: str) -> Path:
    path = folder / f"contact-{run}.lua"
    path.write_text(SCRIPT.replace("QUERY", json.dumps(QUERY)).replace("RUN", json.dumps(run))
                    .replace("AUTHORIZATION", json.dumps(auth.bearer(token))))
    return path


def _wrk(url: str, script: Path, seconds: int) -> tuple[float, float, str]:
    """req/s, the slowest request in seconds, and wrk's output."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    latency = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    refused = auth.wrk_refused(out)
    if refused is not None:
        raise RuntimeError(refused)
    if rps is None or latency is None:
        raise RuntimeError(f"wrk: {out}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}[latency.group(2)]
    slowest = float(latency.group(1)) * scale
    if "timeout" in out:  # requests wrk gave up on count as its timeout (2 s)
        slowest = max(slowest, 2.0)
    return float(rps.group(1)), slowest, out


async def _check(session: aiohttp.ClientSession, url: str, token: str) -> None:
    await auth.assert_required(session, url, token)
    payload = {"query": QUERY, "variables": {"e": "check@example.com"}}
    async with session.post(url, json=payload, headers=auth.headers(token)) as r:
        body = await r.json(content_type=None)
    auth.check(r.status, body, url)
    assert "errors" not in body and body["data"]["startContact"]["contact"]["id"], body


async def run(rounds: int = 3, seconds: int = 5) -> list[str]:
    hub_port, bare_port, embedded_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        async with fresh_database() as database, fresh_namespace() as namespace:
            env = auth.env({**os.environ, "HUB_DATABASE_URL": database, "HUB_BROKER_URL": RABBITMQ_URL,
                            "HUB_BUS_NAMESPACE": namespace, "HUB_RELOAD_ON_CHANGE": "false"})
            token = await auth.create_key(env)
            hub = start([HUB, "serve", "--demo", "--port", str(hub_port), "--log-level", "warning"], env)
            bare = start([sys.executable, str(HERE / "bare_insert.py"), "--port", str(bare_port),
                          "--database", database])
            try:
                async with aiohttp.ClientSession() as session:
                    await up(session, f"http://127.0.0.1:{hub_port}/healthz", hub)
                    await up(session, f"http://127.0.0.1:{bare_port}/healthz", bare)
                    await _check(session, f"http://127.0.0.1:{hub_port}/graphql", token)
                hub_rps, bare_rps, hub_slowest = [], [], []
                for r in range(rounds):  # alternating, so drift on the machine hits both alike
                    rps, slowest, _ = await asyncio.to_thread(
                        _wrk, f"http://127.0.0.1:{hub_port}/graphql", _script(folder, f"pg{r}", token),
                        seconds)
                    hub_rps.append(rps)
                    hub_slowest.append(slowest)
                    rps, _, _ = await asyncio.to_thread(
                        _wrk, f"http://127.0.0.1:{bare_port}/graphql", _script(folder, f"bare{r}", token),
                        seconds)
                    bare_rps.append(rps)
            finally:
                stop(hub, bare)

        env = auth.env({**os.environ, "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/embedded.db",
                        "HUB_RELOAD_ON_CHANGE": "false"})
        embedded_token = await auth.create_key(env)
        argv = [HUB, "serve", "--demo", "--port", str(embedded_port), "--log-level", "warning"]
        embedded = start(argv, env)
        try:
            async with aiohttp.ClientSession() as session:
                await up(session, f"http://127.0.0.1:{embedded_port}/healthz", embedded)
                await _check(session, f"http://127.0.0.1:{embedded_port}/graphql", embedded_token)
            embedded_rps, embedded_slowest, _ = await asyncio.to_thread(
                _wrk, f"http://127.0.0.1:{embedded_port}/graphql",
                _script(folder, "embedded", embedded_token), seconds * 2)
        finally:
            stop(embedded)
    h, b = statistics.median(hub_rps), statistics.median(bare_rps)
    ratio = h / b
    ok = ratio >= TARGET and embedded_slowest < 1.0
    return [
        f"startContact, {CONNECTIONS} callers: PostgreSQL hub {h:,.0f} req/s "
        f"(slowest {max(hub_slowest):.2f} s), "
        f"bare INSERT … RETURNING {b:,.0f} req/s (rounds: hub {[round(x) for x in hub_rps]}, "
        f"bare {[round(x) for x in bare_rps]}); embedded default {embedded_rps:,.0f} req/s, slowest "
        f"{embedded_slowest * 1e3:.0f} ms",
        f"bench start-contact: ratio={ratio:.2f} target={TARGET} {'PASS' if ok else 'FAIL'} "
        f"(hub {h:,.0f} req/s ÷ bare {b:,.0f} req/s; embedded slowest {embedded_slowest * 1e3:.0f} ms, "
        "limit 1000 ms)",
    ]


if __name__ == "__main__":
    for line in asyncio.run(run()):
        print(line)
