"""The credential of every benchmark's client: the hub is measured as it runs in production, with
HUB_AUTH=required, a real API key holding every scope sent by every client (HTTP `Authorization: Bearer`,
graphql-transport-ws `connection_init` payload), and the rate limiter on, set so high that it never
refuses: what authentication and the limiter cost is on the measured path, and no request is refused.
Baselines (bare Starlette, raw aio-pika, the peer gateway) get no credential checks of their own.

A key for a hub process is made with `hub keys create` on the same environment (store) before the hub
starts (`create_key`); a hub in this process makes it itself (`create_key_in`). Any answer that is not
200 stops the benchmark (`check`): a refused request (401, 403, 429) must never count as a fast one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
from procs import HUB

from hub.security.scopes import ALL_SCOPES

if TYPE_CHECKING:
    from hub.runtime import Hub

NAME = "bench"
SCOPES = ",".join(sorted(ALL_SCOPES))
RATE_LIMIT = 1_000_000_000  # requests/s per credential: on, and never reached
ENV = {"HUB_AUTH": "required", "HUB_RATE_LIMIT": str(RATE_LIMIT)}  # a `hub serve` process's
SETTINGS: dict[str, Any] = {"auth": "required", "rate_limit": float(RATE_LIMIT)}  # a Hub in this process
REFUSED = "401 = the key, 403 = a scope or origin, 429 = the rate limit"


def env(base: Mapping[str, str]) -> dict[str, str]:
    """`base` with authentication required and the limiter on (overrides HUB_AUTH/HUB_RATE_LIMIT)."""
    return {**base, **ENV}


async def create_key(hub_env: Mapping[str, str], name: str = NAME) -> str:
    """A key with every scope in the store of `hub_env` (HUB_DATABASE_URL), made by `hub keys create`
    (which migrates the store); its token, the last line of the command's output."""
    proc = await asyncio.create_subprocess_exec(
        HUB, "keys", "create", name, "--scopes", SCOPES, env=dict(hub_env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    lines = out.decode().strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("mkh_"):
        raise RuntimeError(f"hub keys create {name}: exit {proc.returncode}: {err.decode()[-2000:]}")
    return lines[-1].strip()


async def create_key_in(hub: Hub, name: str = NAME) -> str:
    """A key with every scope, made by a hub started in this process; its token."""
    return await hub.security.authn.keys.create(name, SCOPES, None)


def bearer(token: str) -> str:
    return f"Bearer {token}"


def headers(token: str) -> dict[str, str]:
    return {"Authorization": bearer(token)}


def connection_init(token: str) -> dict[str, Any]:
    """graphql-transport-ws `connection_init` with the key."""
    return {"type": "connection_init", "payload": {"authorization": bearer(token)}}


def wrk_lua(token: str) -> str:
    """A wrk script line that sends the key on every request made from wrk.headers."""
    return f"wrk.headers[\"Authorization\"] = {json.dumps(bearer(token))}\n"


def check(status: int, body: Any, what: str = "hub") -> None:
    """Stop at an answer that is not 200 (refused or failed)."""
    if status != 200:
        raise RuntimeError(f"{what}: HTTP {status} ({REFUSED}): {str(body)[:1000]}")


def wrk_refused(out: str) -> str | None:
    """wrk's count of non-2xx/3xx answers (401, 403, 429, 5xx…), as a reason to fail; None if none."""
    for line in out.splitlines():
        if "Non-2xx or 3xx responses" in line:
            return f"wrk: {line.strip()} ({REFUSED}): the run does not count\n{out}"
    return None


async def assert_required(session: aiohttp.ClientSession, url: str, token: str) -> None:
    """The hub at `url` (/graphql) refuses a request without the key (401) and answers one with it
    (200, no errors): authentication is on the path that is measured."""
    payload = {"query": "{ __typename }"}
    async with session.post(url, json=payload, headers={"Authorization": ""}) as r:
        if r.status != 401:
            raise RuntimeError(f"{url}: HTTP {r.status} without a credential, not 401: is HUB_AUTH required?")
    async with session.post(url, json=payload, headers=headers(token)) as r:
        body = await r.text()
        check(r.status, body, url)
        if "errors" in json.loads(body):
            raise RuntimeError(f"{url}: {body[:1000]}")
