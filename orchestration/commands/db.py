from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(help="The state service's PostgreSQL database.", no_args_is_help=True)
out = Console()


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply pending SQL migrations to the state service's database."""
    from state_service.migrate import migrate
    from state_service.server import dsn_from_env

    applied = migrate(dsn_from_env())
    for mig in applied:
        out.print(f"applied {mig.version:04d}_{mig.name}")
    out.print(f"{len(applied)} migration(s) applied; the database is up to date")


@app.command("info")
def info_cmd() -> None:
    """Show which PostgreSQL server tokenwatch resolves to, and why."""
    from psycopg.conninfo import conninfo_to_dict

    from state_service.database import resolve_server

    server = resolve_server()
    params = {k: v for k, v in conninfo_to_dict(server.dsn).items() if k != "password"}
    out.print(f"source: {server.source}  database: {server.database}  server: {params}")
