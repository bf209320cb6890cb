"""hub.api.execution: an operation's objects are freed by reference counting when it ends, not left to
the cyclic collector (graphql-core's executor keeps helpers bound to itself)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import strawberry

from hub.api.execution import HELPERS, Executor
from hub.api.schema import build_schema


class Held:
    """Stands for the hub's Context: what an operation's resolvers hang on to."""


@strawberry.type
class Query:
    @strawberry.field
    async def name(self, info: strawberry.Info) -> str:
        info.context["seen"] = Held()
        return "anna"

    @strawberry.field
    async def both(self, info: strawberry.Info) -> list[int]:
        async def value(n: int) -> int:
            await asyncio.sleep(0)
            return n

        helpers = getattr(getattr(info, "_raw_info", None), "async_helpers", None)
        if helpers is None:  # an older graphql-core: nothing to gather with
            return [1, 2]
        return list(await helpers.gather([value(1), value(2)]))


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _held_after(schema: strawberry.Schema) -> weakref.ref[Any]:
    context: dict[str, Any] = {}
    result = await schema.execute("{ name }", context_value=context)
    assert result.errors is None and result.data == {"name": "anna"}
    return weakref.ref(context["seen"])


async def test_an_operations_objects_are_freed_when_it_ends(no_collector: None) -> None:
    schema = strawberry.Schema(query=Query, execution_context_class=Executor)
    held = await _held_after(schema)
    assert held() is None


@pytest.mark.skipif(HELPERS is None, reason="this graphql-core has no async helpers (and no cycle)")
async def test_graphql_cores_own_executor_keeps_them_until_a_collection(no_collector: None) -> None:
    """Why the hub has its own: the same operation on strawberry's executor leaves them to the collector."""
    held = await _held_after(strawberry.Schema(query=Query))
    assert held() is not None
    gc.collect()
    assert held() is None


async def test_the_helpers_still_gather() -> None:
    schema = strawberry.Schema(query=Query, execution_context_class=Executor)
    result = await schema.execute("{ both }")
    assert result.errors is None and result.data == {"both": [1, 2]}


def test_the_hubs_schema_runs_on_it() -> None:
    assert build_schema().execution_context_class is Executor
