"""What every command group shares: running a coroutine, reporting mapping errors, a started hub."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import typer

from hub.config.loader import MappingError
from hub.config.settings import Settings

# Exit codes: 1 = something the command checked failed (a test, a health check); 2 = invalid input.
FAILED, INVALID = 1, 2


def run(fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
    try:
        return asyncio.run(fn(*args))
    except MappingError as exc:
        fail_mapping(exc)


def fail_mapping(exc: MappingError) -> None:
    typer.echo(
        f"mapping error ({len(exc.problems)} problems):" if len(exc.problems) > 1 else "mapping error:",
        err=True,
    )
    for problem in exc.problems:
        typer.echo(str(problem), err=True)
    raise typer.Exit(INVALID)


async def with_hub(work: Callable[[Any], Awaitable[Any]], consume: bool = False) -> Any:
    from hub.runtime import Hub

    hub = Hub(Settings())
    await hub.start(consume=consume)
    try:
        return await work(hub)
    finally:
        await hub.close()
