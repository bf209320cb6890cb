"""`hub adapters`: what is installed, whether the configured systems answer, and a new adapter package."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from hub.cli.common import FAILED, run
from hub.config.settings import Settings
from hub.ports import Health, ports_of

app = typer.Typer(help="Adapters: the code that connects a system to the hub.", no_args_is_help=True)

CHECK_TIMEOUT = 10.0


@app.command("list")
def list_() -> None:
    """Every installed adapter: entry point, package, the ports it implements."""
    from hub.registry import adapter_factories

    factories = adapter_factories()
    if not factories:
        typer.echo("no adapters installed")
    for name, ep in sorted(factories.items()):
        try:
            ports = ", ".join(p.__name__ for p in ports_of(ep.load())) or "(declares none)"
        except Exception as exc:  # a broken package must not hide the others
            ports = f"cannot load: {type(exc).__name__}: {exc}"
        package = ep.dist.name if ep.dist is not None else "?"
        typer.echo(f"{name}\t{package}\t{ep.value}\t{ports}")


async def check_systems(settings: Settings) -> dict[str, Health]:
    """Build and start every configured system, then ask each for its health (bounded)."""
    from hub.registry import build_systems, load_mapping
    from hub.store.db import create_engine, migrate

    mapping, located = load_mapping(settings.mappings_dir)
    engine = create_engine(settings.database_url)
    systems = build_systems(mapping, located, settings, engine)
    try:
        await migrate(engine, systems.components())
        await systems.start()
        return dict(
            zip(
                systems.adapters,
                await asyncio.gather(*(_health(a) for a in systems.adapters.values())),
                strict=True,
            )
        )
    finally:
        await systems.close()
        await engine.dispose()


async def _health(adapter: Any) -> Health:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            return await adapter.check()
    except TimeoutError:
        return Health(False, f"no answer within {CHECK_TIMEOUT:g}s")
    except Exception as exc:
        return Health(False, f"{type(exc).__name__}: {exc}".splitlines()[0])


@app.command("check")
def check() -> None:
    """Run every configured system's health check; exit 1 when one fails."""
    results = run(check_systems, Settings())
    for name, health in results.items():
        typer.echo(f"{'up  ' if health.ok else 'DOWN'} {name}\t{health.detail}")
    if not all(h.ok for h in results.values()):
        raise typer.Exit(FAILED)
