"""`hub adapters`: what is installed, whether the configured systems answer, and a new adapter package."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer

from hub.cli.common import FAILED, INVALID, run
from hub.config.loader import MappingError
from hub.config.settings import Settings
from hub.ports import Health, ports_of
from hub.waiting import bounded

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


STORE = "(hub store)"


async def check_systems(settings: Settings) -> dict[str, Health]:
    """The hub's store, then every configured system: started and asked for its health, each bounded.
    One that is down is reported, never a reason to stop checking the others."""
    from hub.registry import build_systems, load_mapping
    from hub.store.db import create_engine, migrate

    mapping, located = load_mapping(settings.mappings_dir)
    engine = create_engine(settings.database_url)
    systems = build_systems(mapping, located, settings, engine)
    results: dict[str, Health] = {}
    try:
        store = await _bounded(migrate(engine, systems.components()))
        results[STORE] = store or Health(True, "reachable, migrated")
        started = await asyncio.gather(*(_bounded(a.start()) for a in systems.adapters.values()))
        healths = await asyncio.gather(
            *(_done(failed) if failed else _health(a)
              for a, failed in zip(systems.adapters.values(), started, strict=True))
        )
        results.update(zip(systems.adapters, healths, strict=True))
        return results
    finally:
        await systems.close()
        await engine.dispose()


async def _bounded(work: Any) -> Health | None:
    """None when the work succeeded, else why not (only the kind of failure: an exception's text may
    carry a DSN or a token)."""
    try:
        await bounded(work, CHECK_TIMEOUT)
    except TimeoutError:
        return Health(False, f"no answer within {CHECK_TIMEOUT:g}s")
    except MappingError:
        raise
    except Exception as exc:
        return Health(False, f"failed ({type(exc).__name__})")
    return None


async def _done(health: Health) -> Health:
    return health


async def _health(adapter: Any) -> Health:
    try:
        return await bounded(adapter.check(), CHECK_TIMEOUT)
    except TimeoutError:
        return Health(False, f"no answer within {CHECK_TIMEOUT:g}s")
    except Exception as exc:
        return Health(False, type(exc).__name__)


@app.command("check")
def check() -> None:
    """Run every configured system's health check; exit 1 when one fails."""
    results = run(check_systems, Settings())
    for name, health in results.items():
        typer.echo(f"{'up  ' if health.ok else 'DOWN'} {name}\t{health.detail}")
    if not all(h.ok for h in results.values()):
        raise typer.Exit(FAILED)


@app.command("new")
def new(
    name: str = typer.Argument(..., help="the adapter's entry-point name, e.g. loyalty or acme-crm"),
    directory: Path | None = typer.Option(
        None, "--dir", help="where to write the package (default: ./NAME-adapter); new or empty"
    ),
) -> None:
    """Write a ready-to-install adapter package (HTTP+JSON, ProfileSource + EventConsumer) whose tests
    run the acceptance kit against a local server playing the system."""
    from hub.cli.scaffold import Names, ScaffoldError, scaffold
    from hub.registry import adapter_factories

    try:
        names = Names.of(name)
        if name in adapter_factories():
            raise ScaffoldError(f"an adapter named {name!r} is installed already; choose another name")
        target = directory or Path(names.distribution)
        written = scaffold(name, target)
    except ScaffoldError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(INVALID) from None
    typer.echo(f"wrote {len(written)} files to {target}/ (adapter {name}, package {names.module})")
    typer.echo(f"next: pip install -e '{target}[dev]' && (cd {target} && pytest -q)")
