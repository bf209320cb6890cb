"""`hub serve` and the commands around it: migrate, demo, export-schema, check."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hub.cli.common import INVALID, fail_mapping, run, with_hub
from hub.cli.progress import progress
from hub.config.loader import MappingError
from hub.config.settings import PROJECT_ROOT, Settings

# The published SDL: the checkout's schema/; an installed hub (no checkout beside it) means ./schema/.
_SCHEMA_DIR = PROJECT_ROOT / "schema"
SDL_PATH = (_SCHEMA_DIR if _SCHEMA_DIR.is_dir() else Path("schema")) / "schema.graphql"


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[bool, typer.Option("--demo", help="Load the demo data into an empty store.")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Hub processes sharing the port; more than one needs PostgreSQL and RabbitMQ, which they "
            "coordinate through.",
        ),
    ] = 1,
) -> None:
    """Run the hub: GraphQL on http://HOST:PORT/graphql (GraphiQL in a browser).

    SIGHUP, or a change of a file in the mappings folder, reloads the mapping without a restart."""
    import uvicorn

    from hub.api.app import create_app
    from hub.api.oneflush import OneFlushHttp
    from hub.cli.mappings import validate_dir
    from hub.observability import logs, metrics

    logs.configure(Settings().log_format, log_level)  # HUB_LOG_FORMAT=json: one JSON object per line
    # httpx logs every request's URL at INFO, and a URL may hold a customer's key (an email).
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    settings = Settings(demo=demo or Settings().demo)
    try:
        run(validate_dir, settings.mappings_dir, True)
    except MappingError as exc:  # pragma: no cover - run() reports it
        fail_mapping(exc)
    typer.echo(
        f"MarkITing Hub on http://{host}:{port}/graphql (store {settings.database_url.split('@')[-1]}, "
        f"bus {settings.broker_url.split('@')[-1]}"
        + (f", {workers} processes)" if workers > 1 else ")")
    )
    # Idle keep-alive connections closed after keep_alive_seconds; a websocket message no larger than a
    # request body. (A slow request body is cut off by hub.api.answers; connection_init by HubGraphQL.)
    edge: dict[str, Any] = {
        "timeout_keep_alive": max(1, round(settings.keep_alive_seconds)),
        "ws_max_size": settings.max_body_bytes,
        # Requests and websockets in flight at SIGTERM get this long; then the hub's parts close.
        "timeout_graceful_shutdown": max(1, round(settings.shutdown_seconds)),
        "http": OneFlushHttp,  # an answer's head and body in one write (hub.api.oneflush)
    }
    if settings.log_format == "json":  # uvicorn applies it in every worker process
        edge["log_config"] = logs.uvicorn_config(settings.log_format, log_level)
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, lifespan="on", **edge)
        return
    if not settings.database_url.startswith("postgresql") or not settings.broker_url.startswith("amqp"):
        typer.echo(
            "--workers above 1 needs PostgreSQL (HUB_DATABASE_URL=postgresql+asyncpg://…) and RabbitMQ "
            "(HUB_BROKER_URL=amqp://…): the processes share them. The embedded defaults are one process.",
            err=True,
        )
        raise typer.Exit(INVALID)
    # Set up once, here, before the processes start: migrations and demo data are not the workers' race.
    if settings.demo:
        run(with_hub, _load_demo)
    os.environ["HUB_DEMO"] = "false"
    if not settings.auth_required:  # the demo's open hub stays open in its workers (warned by each)
        os.environ["HUB_AUTH"] = "off"
    # Metrics of every worker summed by whichever answers (prometheus-client's multiprocess mode).
    metrics_dir = metrics.prepare_dir()
    try:
        uvicorn.run(
            "hub.api.app:create_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="on",
            **edge,
        )
    finally:
        metrics.remove_dir(metrics_dir)


async def _load_demo(hub: Any) -> None:
    from hub.demo import load_demo

    with progress("loading demo data", unit="customers") as bar:
        await load_demo(hub, bar.report)


def check() -> None:
    """Validate the mappings (an alias of `hub mappings validate`)."""
    from hub.cli.mappings import validate

    validate(None)


def migrate() -> None:
    """Apply database migrations, the hub's and its adapters' (the server also does this at start)."""

    async def work() -> None:
        from hub.registry import build_systems, load_mapping
        from hub.store.db import create_engine, migrate

        settings = Settings()
        engine = create_engine(settings.database_url)
        try:
            mapping, located = load_mapping(settings.mappings_dir)
            systems = build_systems(mapping, located, settings, engine)
            await migrate(engine, systems.components())
        finally:
            await engine.dispose()
        typer.echo("migrated to head")

    run(work)


def demo() -> None:
    """Load the demo customers into the store (idempotent)."""

    async def work(hub: Any) -> None:
        from hub.demo import load_demo

        with progress("loading demo data", unit="customers") as bar:
            created = await load_demo(hub, bar.report)
        await hub.settle(timeout=30)
        typer.echo(f"demo data loaded: {created} customers created")

    run(with_hub, work, True)


def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL; '-' for stdout.")] = SDL_PATH,
) -> None:
    """Write the GraphQL SDL that channels code against (schema/schema.graphql)."""
    from hub.api.schema import schema

    sdl = schema.as_str() + "\n"
    if str(output) == "-":
        sys.stdout.write(sdl)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(sdl, encoding="utf-8")
        typer.echo(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(check)
    app.command()(migrate)
    app.command()(demo)
    app.command("export-schema")(export_schema)
