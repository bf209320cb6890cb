"""`hub` command line: one module per command group, joined here."""

from __future__ import annotations

import typer

from hub.cli import adapters, campaigns, dlq, flows, keys, mappings, schema, server

app = typer.Typer(
    help="MarkITing Hub: one GraphQL API over your marketing, sales and channel systems.",
    no_args_is_help=True,
    add_completion=False,
)
server.register(app)
app.add_typer(mappings.app, name="mappings")
app.add_typer(adapters.app, name="adapters")
app.add_typer(dlq.app, name="dlq")
app.add_typer(flows.app, name="flows")
app.add_typer(keys.app, name="keys")
app.add_typer(schema.app, name="schema")
app.add_typer(campaigns.app, name="campaigns")

SDL_PATH = server.SDL_PATH

if __name__ == "__main__":  # pragma: no cover
    app()
