"""`hub keys`: API keys for channel and system callers (create, list, revoke). Each is an operator action
in the audit log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer

from hub.cli.common import FAILED, INVALID, run
from hub.config.settings import Settings
from hub.security.scopes import ALL_SCOPES

app = typer.Typer(help="API keys: who may call the hub, with which scopes.", no_args_is_help=True)


async def _with_keys(work: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    """The key ring and the audit log on the configured store (migrated), without starting a hub."""
    from hub.security.audit import AuditLog
    from hub.security.keys import KeyRing
    from hub.store.db import create_engine, migrate

    engine = create_engine(Settings().database_url)
    try:
        await migrate(engine)
        audit = AuditLog(engine)
        try:
            return await work(KeyRing(engine), audit)
        finally:
            await audit.flush()
    finally:
        await engine.dispose()


@app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who the key is for, e.g. website or crm-sync; never reused.")],
    scopes: Annotated[
        str, typer.Option(help=f"Comma-separated scopes: {', '.join(sorted(ALL_SCOPES))}.")
    ],
    channel: Annotated[
        str | None, typer.Option(help="Bind the key to one channel: it may act only as that channel.")
    ] = None,
) -> None:
    """Create a key. It is printed once, as the last line: store it now, the hub keeps only a hash."""
    from hub.security.audit import cli_user
    from hub.security.keys import KeyCommandError

    async def work(ring: Any, audit: Any) -> str | None:
        try:
            token = await ring.create(name, scopes, channel)
        except KeyCommandError as exc:
            audit.record(cli_user(), "cli", "keys.create", name, "INVALID")
            typer.echo(str(exc), err=True)
            return None
        audit.record(cli_user(), "cli", "keys.create", name, "ok")
        return str(token)

    token = run(_with_keys, work)
    if token is None:
        raise typer.Exit(INVALID)
    typer.echo(f"created key {name!r}; it is shown once, here:")
    typer.echo(token)


@app.command("list")
def keys_list() -> None:
    """List keys: name, scopes, channel, created, revoked (never the key itself)."""

    async def work(ring: Any, audit: Any) -> None:
        keys = await ring.list()
        if not keys:
            typer.echo("no keys")
        for k in keys:
            state = f"revoked {k.revoked_at.isoformat()}" if k.revoked_at else "active"
            channel = k.channel.value if k.channel else "-"
            typer.echo(
                f"{k.name}\t{state}\tchannel={channel}\tscopes={','.join(sorted(k.scopes))}\t"
                f"created {k.created_at.isoformat()}"
            )

    run(_with_keys, work)


@app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key: it stops working at once in every hub process."""
    from hub.security.audit import cli_user

    async def work(ring: Any, audit: Any) -> bool:
        done = bool(await ring.revoke(name))
        audit.record(cli_user(), "cli", "keys.revoke", name, "ok" if done else "NOT_FOUND")
        return done

    if not run(_with_keys, work):
        typer.echo(f"no active key named {name!r}", err=True)
        raise typer.Exit(FAILED)
    typer.echo(f"revoked key {name!r}")
