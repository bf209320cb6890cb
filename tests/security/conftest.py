"""The hub with authentication on (HUB_AUTH=required), on both stacks, and callers with keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from hub.security.scopes import ALL_SCOPES


@pytest.fixture
def hub_settings(database_url, broker_url, bus_namespace):
    from hub.config import Settings

    return Settings(
        database_url=database_url, broker_url=broker_url, bus_namespace=bus_namespace,
        retry_backoff_seconds=0.05, relay_idle_seconds=0.1, delivery_limit=3, auth="required",
    )


@pytest.fixture
def app(hub):
    from hub.api.app import create_app

    return create_app(hub=hub)


@pytest.fixture
async def anonymous(app) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as c:
        yield c


@pytest.fixture
def new_key(hub) -> Callable[..., Awaitable[str]]:
    made = iter(range(1, 10_000))

    async def make(scopes: str | frozenset[str] = ALL_SCOPES, channel: str | None = None, name: str = "") -> str:
        text = scopes if isinstance(scopes, str) else ",".join(sorted(scopes))
        return await hub.security.authn.keys.create(name or f"key-{next(made)}", text, channel)

    return make


@pytest.fixture
def caller(app) -> Callable[[str], httpx.AsyncClient]:
    """An HTTP client that sends this token (close it: use `async with`)."""

    def make(token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://hub.test",
            headers={"Authorization": f"Bearer {token}"},
        )

    return make
