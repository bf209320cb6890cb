"""`hub flows`: the information flows of the mapping, and running a batch flow now."""

from __future__ import annotations

from typing import Any

import typer

from hub.cli.common import FAILED, INVALID, fail_mapping, run, with_hub
from hub.cli.progress import progress
from hub.config.loader import MappingError
from hub.config.settings import Settings

app = typer.Typer(help="Information flows from the mapping.", no_args_is_help=True)


@app.command("list")
def flows_list() -> None:
    """Show the flows: source, destination, events and mode."""
    from hub.core.flows import schedule_of
    from hub.registry import load_mapping

    try:
        mapping, _ = load_mapping(Settings().mappings_dir)
    except MappingError as exc:
        fail_mapping(exc)
    for f in mapping.flows:
        typer.echo(f"{f.name}\t{f.source} -> {f.destination}\t{','.join(f.events)}\t{schedule_of(f)}")


@app.command("run")
def flows_run(name: str) -> None:
    """Deliver a batch flow's waiting events now, without waiting for its time. It counts as the flow's
    run (`lastRunAt`); a run in progress (by a hub process, or another `hub flows run`) is not
    overlapped: the command says so and fails."""
    from hub.config.mapping import FlowMode
    from hub.messaging.scheduler import FlowBusy

    async def work(hub: Any) -> None:
        try:
            flow = hub.flow(name)
        except KeyError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(INVALID) from None
        if flow.mode is FlowMode.REALTIME:
            typer.echo(f"flow {name} is realtime: its events are delivered as they come", err=True)
            raise typer.Exit(INVALID)
        try:
            with progress(f"flow {name}", unit="events", every=100) as bar:
                count = await hub.scheduler.deliver(flow, progress=bar.report)
        except FlowBusy as exc:
            typer.echo(f"{exc}; try again when that run is over", err=True)
            raise typer.Exit(FAILED) from None
        typer.echo(f"flow {name}: delivered {count} events")

    run(with_hub, work)
