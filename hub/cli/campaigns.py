"""`hub campaigns launch`: the `launchCampaign` mutation from the command line, with its progress."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hub.cli.common import FAILED, INVALID, run, with_hub
from hub.cli.progress import progress

app = typer.Typer(help="Outbound campaigns: CM plans leads, LM sends them.", no_args_is_help=True)


@app.command("launch")
def launch(
    offer: Annotated[str, typer.Argument(help="The offer's id in CM's catalog.")],
    channel: Annotated[
        list[str], typer.Option("--channel", help="An outbound channel, in order of preference (repeatable): "
                                "EMAIL, PRINT, CALLCENTER.")
    ],
    segment: Annotated[str | None, typer.Option(help="A segment of CM's catalog.")] = None,
    customer: Annotated[
        list[str] | None, typer.Option("--customer", help="A customer's golden id (repeatable).")
    ] = None,
) -> None:
    """Launch a campaign: CM plans one lead per eligible customer of the segment (or the customers
    given) and hands them to LM; the running hub sends them within each channel's capacity."""
    from hub.core.errors import HubError, NotConfigured
    from hub.model import LeadChannel

    try:
        channels = [LeadChannel(c.strip().upper()) for c in channel]
    except ValueError:
        names = ", ".join(c.value for c in LeadChannel)
        typer.echo(f"unknown channel in {', '.join(channel)}: use {names}", err=True)
        raise typer.Exit(INVALID) from None

    async def work(hub: Any) -> None:
        campaigns = hub.wiring.campaigns
        if campaigns is None:
            typer.echo("no systems play campaign_planner and lead_manager: campaigns are off", err=True)
            raise typer.Exit(FAILED)
        try:
            with progress("handing leads to LM", unit="leads") as bar:
                campaign = await campaigns.launch(offer, segment, customer, channels, progress=bar.report)
        except NotConfigured as exc:
            typer.echo(exc.message, err=True)
            raise typer.Exit(FAILED) from None
        except HubError as exc:
            typer.echo(f"{exc.code}: {exc.message}", err=True)
            raise typer.Exit(INVALID) from None
        typer.echo(f"campaign {campaign.plan.id}: {len(campaign.leads)} leads planned for offer {offer}")

    # The leads wait for LM durably (outbox, then LM's queue): the running hub's processes send them.
    run(with_hub, work)
