"""`hub` command line: serve, check, demo, schema export, dead letters and flows."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from hub.config import PROJECT_ROOT, Settings
from hub.mapping.loader import MappingError

app = typer.Typer(
    help="MarkITing Hub: one GraphQL API over your marketing, sales and channel systems.",
    no_args_is_help=True,
    add_completion=False,
)
dlq = typer.Typer(help="Dead letters: messages a destination could not take.", no_args_is_help=True)
flows = typer.Typer(help="Information flows from the mapping.", no_args_is_help=True)
app.add_typer(dlq, name="dlq")
app.add_typer(flows, name="flows")

SDL_PATH = PROJECT_ROOT / "schema" / "schema.graphql"


def _run(fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
    try:
        return asyncio.run(fn(*args))
    except MappingError as exc:
        typer.echo(f"mapping error:\n{exc}", err=True)
        raise typer.Exit(2) from None


async def _with_hub(work: Callable[[Any], Awaitable[Any]], consume: bool = False) -> Any:
    from hub.runtime import Hub

    hub = Hub(Settings())
    await hub.start(consume=consume)
    try:
        return await work(hub)
    finally:
        await hub.close()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[bool, typer.Option("--demo", help="Load the demo data into an empty store.")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the hub: GraphQL on http://HOST:PORT/graphql (GraphiQL in a browser)."""
    import uvicorn

    from hub.api.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(demo=demo or Settings().demo)
    try:
        from hub.registry import load_mapping

        load_mapping(settings)
    except MappingError as exc:
        typer.echo(f"mapping error:\n{exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"MarkITing Hub on http://{host}:{port}/graphql (store {settings.database_url}, "
        f"bus {settings.broker_url.split('@')[-1]})"
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, lifespan="on")


@app.command()
def check() -> None:
    """Validate the mappings (file, line and field for every problem) and build the adapters."""

    async def work() -> None:
        from hub.registry import build_systems, load_mapping
        from hub.store.db import create_engine

        settings = Settings()
        mapping, located = load_mapping(settings)
        engine = create_engine("sqlite+aiosqlite:///:memory:")
        systems = build_systems(mapping, located, settings, engine)
        await systems.start()
        await systems.close()
        await engine.dispose()
        typer.echo(
            f"ok: {len(mapping.systems)} systems, {len(mapping.flows)} flows in {settings.mappings_dir}"
        )

    _run(work)


@app.command()
def migrate() -> None:
    """Apply database migrations (the server also does this at start)."""

    async def work() -> None:
        from hub.store.db import create_engine, migrate

        engine = create_engine(Settings().database_url)
        await migrate(engine)
        await engine.dispose()
        typer.echo("migrated to head")

    _run(work)


@app.command()
def demo() -> None:
    """Load the demo customers into the store (idempotent)."""

    async def work(hub: Any) -> None:
        from hub.demo import load_demo

        created = await load_demo(hub)
        await hub.settle(timeout=30)
        typer.echo(f"demo data loaded: {created} customers created")

    _run(_with_hub, work, True)


@app.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL; '-' for stdout.")] = SDL_PATH,
) -> None:
    """Write the GraphQL SDL that channels code against (schema/schema.graphql)."""
    from hub.api.schema import schema

    sdl = schema.as_str() + "\n"
    if str(output) == "-":
        sys.stdout.write(sdl)
    else:
        output.write_text(sdl, encoding="utf-8")
        typer.echo(f"wrote {output}")


@dlq.command("list")
def dlq_list(queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None) -> None:
    """List dead letters with their queue, attempts and reason."""

    async def work(hub: Any) -> None:
        letters = await hub.bus.dead_letters(queue)
        if not letters:
            typer.echo("no dead letters")
        for d in letters:
            when = d.dead_at.isoformat() if d.dead_at else "-"
            typer.echo(f"{d.id}\t{d.queue}\tattempts={d.attempts}\t{when}\t{d.reason}")

    _run(_with_hub, work)


@dlq.command("replay")
def dlq_replay(
    id: Annotated[list[str] | None, typer.Option("--id", help="A dead letter's id (repeatable).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead letter.")] = False,
) -> None:
    """Send dead letters back to their queues."""
    if bool(id) == all_:
        typer.echo("give --id ID (one or more) or --all", err=True)
        raise typer.Exit(2)

    async def work(hub: Any) -> None:
        count = await hub.bus.replay(None if all_ else id)
        typer.echo(f"replayed {count} dead letters")

    _run(_with_hub, work)


@flows.command("list")
def flows_list() -> None:
    """Show the flows: source, destination, events and mode."""
    from hub.registry import load_mapping

    try:
        mapping, _ = load_mapping(Settings())
    except MappingError as exc:
        typer.echo(f"mapping error:\n{exc}", err=True)
        raise typer.Exit(2) from None
    for f in mapping.flows:
        when = (
            ""
            if f.mode == "realtime"
            else f" at {f.at:%H:%M} UTC" + (f" on {f.weekday.name}" if f.mode == "weekly" else "")
        )
        typer.echo(f"{f.name}\t{f.source} -> {f.destination}\t{','.join(f.events)}\t{f.mode.value}{when}")


@flows.command("run")
def flows_run(name: str) -> None:
    """Deliver a batch flow's waiting events now, without waiting for its time."""

    async def work(hub: Any) -> None:
        try:
            flow = hub.flow(name)
        except KeyError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        count = await hub.scheduler.deliver(flow)
        typer.echo(f"flow {name}: delivered {count} events")

    _run(_with_hub, work)


if __name__ == "__main__":  # pragma: no cover
    app()
