from __future__ import annotations

import json

import typer

app = typer.Typer(help="The token lifecycle state machine.", no_args_is_help=True)


@app.command("show")
def show_cmd() -> None:
    """Print the lifecycle (states, transitions, vocabularies) as JSON."""
    from state_service.lifecycle import as_dict

    typer.echo(json.dumps(as_dict(), indent=2))
