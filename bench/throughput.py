"""view-throughput: the cached customer view (profile, segments, 3 NBAs, offer history) over HTTP
under wrk (16 connections), against a bare Starlette endpoint that returns the same bytes under the same
server settings (bench/bare.py). The hub runs as `hub serve` on its embedded defaults with the demo data,
as in production (bench/auth.py: an API key on every request, the rate limiter on); the bare endpoint
gets the same requests, key included, and ignores it.

Hub and baseline alternate, `rounds` times; the ratio is hub req/s ÷ baseline req/s (medians).
Target >= 0.30.
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
from procs import HUB, free_port, start, stop, up

TARGET = 0.30
CONNECTIONS = 16
HERE = Path(__file__).resolve().parent
QUERY = """query($e: String!) { customerByKey(email: $e) {
  id name emails phones segments { id name } offerHistory { offerId shown accepted rejected later }
  nextBestActions(channel: WEBSITE, limit: 3) { offerId title score reason decisionId } } }"""
EMAIL = "anna.devries@example.com"


def _wrk(url: str, script: Path, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    refused = auth.wrk_refused(out)
    if refused is not None:
        raise RuntimeError(refused)
    if found is None:
        raise RuntimeError(f"wrk: {out}")
    return float(found.group(1))


def post_script(folder: Path, payload: dict, token: str) -> Path:
    """A wrk script that POSTs `payload` as JSON on every request, with the API key."""
    script = folder / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        + auth.wrk_lua(token)
        + f"wrk.body = {json.dumps(json.dumps(payload))}\n"
    )
    return script


async def alternate(ports: list[int], script: Path, rounds: int, seconds: int) -> list[list[float]]:
    """req/s of each port's /graphql under wrk, in turn, `rounds` times (so drift hits all alike)."""
    results: list[list[float]] = [[] for _ in ports]
    for _ in range(rounds):
        for port, measured in zip(ports, results, strict=True):
            url = f"http://127.0.0.1:{port}/graphql"
            measured.append(await asyncio.to_thread(_wrk, url, script, seconds))
    return results


async def run(rounds: int = 3, seconds: int = 5) -> list[str]:
    if shutil.which("wrk") is None:
        return ["bench view-throughput: skipped: wrk is not installed (apt-get install wrk; make bench does)"]
    hub_port, bare_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = auth.env({**os.environ, "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
                        "HUB_RELOAD_ON_CHANGE": "false"})
        token = await auth.create_key(env)
        hub = start([HUB, "serve", "--demo", "--port", str(hub_port), "--log-level", "warning"], env)
        bare = None
        try:
            async with aiohttp.ClientSession() as session:
                await up(session, f"http://127.0.0.1:{hub_port}/healthz", hub)
                await auth.assert_required(session, f"http://127.0.0.1:{hub_port}/graphql", token)
                payload = {"query": QUERY, "variables": {"e": EMAIL}}
                async with session.post(f"http://127.0.0.1:{hub_port}/graphql", json=payload,
                                        headers=auth.headers(token)) as r:
                    answer = await r.read()
                    auth.check(r.status, answer)
                body = json.loads(answer)
                assert "errors" not in body and body["data"]["customerByKey"]["nextBestActions"], body
                (Path(tmp) / "answer.json").write_bytes(answer)
                answer_file = str(Path(tmp) / "answer.json")
                bare = start([sys.executable, str(HERE / "bare.py"), "--port", str(bare_port),
                              "--body", answer_file])
                await up(session, f"http://127.0.0.1:{bare_port}/healthz", bare)
            # The same request to both: the bare endpoint ignores the key, the hub checks it.
            script = post_script(Path(tmp), payload, token)
            hub_rps, bare_rps = await alternate([hub_port, bare_port], script, rounds, seconds)
        finally:
            stop(hub, bare)
    h, b = statistics.median(hub_rps), statistics.median(bare_rps)
    ratio = h / b
    return [
        f"cached view over HTTP, {CONNECTIONS} connections: hub {h:,.0f} req/s, bare Starlette with the same "
        f"bytes {b:,.0f} req/s (rounds: hub {[round(x) for x in hub_rps]}, "
        f"bare {[round(x) for x in bare_rps]})",
        f"bench view-throughput: ratio={ratio:.3f} target={TARGET} {'PASS' if ratio >= TARGET else 'FAIL'} "
        f"(hub {h:,.0f} req/s ÷ bare {b:,.0f} req/s)",
    ]


if __name__ == "__main__":
    for line in asyncio.run(run()):
        print(line)
