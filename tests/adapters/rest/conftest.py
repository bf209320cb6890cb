"""Fixtures: the fake external system on a real port, and REST adapters pointed at it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hub.config import Settings
from hub.ports import AdapterContext
from hub_adapters.generic.rest import RestAdapter, RestConfig
from tests.adapters.rest.server import FakeSystem, free_port, serve

# Fast, predictable defaults: a short budget, quick back-off, a breaker that stays out of the way
# unless a test is about it.
QUICK = {
    "retry": {"attempts": 3, "backoff_seconds": 0.01, "max_backoff_seconds": 0.05},
    "breaker": {"failures": 100, "cooldown_seconds": 60},
}
MEMBERS = {"by_key": {"path": "/members/{key}", "record": "member"}}


@pytest.fixture
def system() -> FakeSystem:
    return FakeSystem()


@pytest.fixture
async def base_url(system) -> AsyncIterator[str]:
    async with serve(system) as url:
        yield url


@pytest.fixture
def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


Factory = Callable[..., Any]


@pytest.fixture
async def make_adapter() -> AsyncIterator[Factory]:
    """make_adapter(base_url, timeout=..., **config): a started adapter, closed after the test."""
    made: list[RestAdapter] = []

    async def make(base_url: str, timeout: float = 2.0, system: str = "loyalty", **config: Any) -> RestAdapter:
        cfg = RestConfig.model_validate({"base_url": base_url, **QUICK, **config})
        ctx = AdapterContext(
            system=system, settings=Settings(), engine=None, config=cfg, timeout=timeout,
            log=logging.getLogger(f"hub.system.{system}"),
        )
        adapter = RestAdapter(ctx)
        await adapter.start()
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.close()
