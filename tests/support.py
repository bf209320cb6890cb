"""Helpers for tests (import as `from tests.support import ...`)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aio_pika


async def eventually(check, timeout: float = 10.0, interval: float = 0.02):
    """Poll an async or sync predicate until it returns a truthy value; return that value."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)


async def gql(client, query: str, variables: dict[str, Any] | None = None, *, ok: bool = True) -> dict[str, Any]:
    """POST a GraphQL operation; with ok=True assert it had no errors and return `data`, else the body."""
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    body = response.json()
    if ok:
        assert response.status_code == 200, body
        assert "errors" not in body, body["errors"]
        return body["data"]
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]


START = """
mutation Start($input: StartContactInput!) {
  startContact(input: $input) {
    created
    contact { id channel startedAt endedAt }
    customer { id name emails phones segments { id name } }
    nextBestActions { offerId title channel priority score reason decisionId }
  }
}
"""

RECORD = """
mutation Record($contactId: ID!, $events: [ContactEventInput!]!) {
  recordContactEvents(contactId: $contactId, events: $events) {
    accepted eventIds nextBestActions { offerId score reason decisionId }
  }
}
"""

CUSTOMER = """
query Customer($id: ID!) {
  customer(id: $id) {
    id name emails phones segments { id name }
    nextBestActions(channel: WEBSITE) { offerId score }
    offerHistory { offerId shown accepted rejected later lastShownAt }
    contacts { id channel startedAt endedAt }
  }
}
"""


async def start_contact(client, channel: str = "WEBSITE", **identification: str) -> dict[str, Any]:
    data = await gql(client, START, {"input": {"channel": channel, "identification": identification}})
    return data["startContact"]


# Every hub declares a privacy queue per system that handles privacy requests (hub.core.privacy): the
# shipped mapping's, deleted with any namespace (a missing one is skipped).
SHIPPED_PRIVACY_QUEUES = tuple(f"privacy.{s}" for s in ("hub", "crm", "cm", "backoffice", "lm"))


async def delete_topology(url: str, ns: str, queues) -> None:
    """Delete a test namespace's queues and exchanges (each on its own channel: a missing one closes it)."""
    connection = await aio_pika.connect(url)
    try:
        for queue in [*queues, *SHIPPED_PRIVACY_QUEUES, "dead-letters"]:
            with contextlib.suppress(Exception):
                async with connection.channel() as ch:
                    await ch.queue_delete(f"{ns}.{queue}")
        for exchange in ("events", "dlx"):
            with contextlib.suppress(Exception):
                async with connection.channel() as ch:
                    await ch.exchange_delete(f"{ns}.{exchange}")
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def serving(app, http: type | None = None):
    """An ASGI app served by uvicorn on a free port of this host, in this event loop, with `hub serve`'s
    HTTP protocol (hub.api.oneflush) unless `http` names another: yields 'host:port', stops the server
    after."""
    import uvicorn

    from hub.api.oneflush import OneFlushHttp

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", http=http or OneFlushHttp
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
