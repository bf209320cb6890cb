"""`hub dlq`: dead letters, with their reasons, and replay."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hub.cli.common import INVALID, run, with_hub
from hub.cli.progress import progress

app = typer.Typer(help="Dead letters: messages a destination could not take.", no_args_is_help=True)


@app.command("list")
def dlq_list(queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None) -> None:
    """List dead letters with their queue, attempts and reason."""

    async def work(hub: Any) -> None:
        letters = await hub.bus.dead_letters(queue)
        if not letters:
            typer.echo("no dead letters")
        for d in letters:
            when = d.dead_at.isoformat() if d.dead_at else "-"
            typer.echo(f"{d.id}\t{d.queue}\tattempts={d.attempts}\t{when}\t{d.reason}")

    run(with_hub, work)


@app.command("replay")
def dlq_replay(
    id: Annotated[list[str] | None, typer.Option("--id", help="A dead letter's id (repeatable).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead letter.")] = False,
) -> None:
    """Send dead letters back to their queues."""
    if bool(id) == all_:
        typer.echo("give --id ID (one or more) or --all", err=True)
        raise typer.Exit(INVALID)

    async def work(hub: Any) -> None:
        wanted = None if all_ else set(id or ())
        letters = [d for d in await hub.bus.dead_letters() if wanted is None or d.id in wanted]
        with progress("replaying dead letters", total=len(letters), unit="dead letters") as bar:
            count = await hub.bus.replay(None if all_ else id, progress=bar.report)
        typer.echo(f"replayed {count} dead letters")

    run(with_hub, work)
