"""`hub flows`: the information flows of the mapping, and running a batch flow now."""

from __future__ import annotations

from typing import Any

import typer

from hub.cli.common import INVALID, fail_mapping, run, with_hub
from hub.config.loader import MappingError
from hub.config.settings import Settings

app = typer.Typer(help="Information flows from the mapping.", no_args_is_help=True)


@app.command("list")
def flows_list() -> None:
    """Show the flows: source, destination, events and mode."""
    from hub.registry import load_mapping

    try:
        mapping, _ = load_mapping(Settings().mappings_dir)
    except MappingError as exc:
        fail_mapping(exc)
    for f in mapping.flows:
        when = (
            ""
            if f.mode == "realtime"
            else f" at {f.at:%H:%M} UTC" + (f" on {f.weekday.name}" if f.mode == "weekly" else "")
        )
        typer.echo(f"{f.name}\t{f.source} -> {f.destination}\t{','.join(f.events)}\t{f.mode.value}{when}")


@app.command("run")
def flows_run(name: str) -> None:
    """Deliver a batch flow's waiting events now, without waiting for its time."""

    async def work(hub: Any) -> None:
        try:
            flow = hub.flow(name)
        except KeyError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(INVALID) from None
        count = await hub.scheduler.deliver(flow)
        typer.echo(f"flow {name}: delivered {count} events")

    run(with_hub, work)
