from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(help="Compliance checks on the state service's records.", no_args_is_help=True)
out = Console()


@app.command("verify")
def verify_cmd() -> None:
    """Recompute every token's hash chain and name any broken one (exit 1 if any)."""
    from state_service.chain import verify_database
    from state_service.server import dsn_from_env

    result = verify_database(dsn_from_env())
    for brk in result.breaks or []:
        out.print(f"[red]BROKEN[/] {brk}")
    out.print(f"verified {result.rows} transition(s) of {result.tokens} token(s): "
              + ("[green]all chains intact[/]" if result.ok
                 else f"[red]{len(result.breaks)} broken chain(s)[/]"))
    if not result.ok:
        raise typer.Exit(1)
