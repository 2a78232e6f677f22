from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(help="The state service's PostgreSQL database.", no_args_is_help=True)
out = Console()


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply pending SQL migrations to the state service's database, then set up its roles
    (tokenwatch_owner, tokenwatch_service, tokenwatch_reader) and their grants. Run it as the
    admin (TOKENWATCH_PG_DSN: a superuser, or RDS's master user)."""
    from state_service import roles
    from state_service.migrate import migrate_database
    from state_service.server import dsn_from_env

    report = migrate_database(dsn_from_env())
    for mig in report.applied:
        out.print(f"applied {mig.version:04d}_{mig.name}")
    done = report.roles
    for role, status in done.status.items():
        kind = "NOLOGIN" if role == roles.OWNER else "LOGIN"
        secret = (f"; password set from {roles.PASSWORD_ENV[role]}"
                  if role in done.passwords else "")
        out.print(f"role {role} ({kind}): {status}{secret}")
        for what in done.privileges[role]:
            out.print(f"  {what}")
    for line in done.memberships:
        out.print(line)
    if done.owned:
        out.print(f"handed to {roles.OWNER}: {', '.join(done.owned)}")
    out.print("grants: " + ("applied (they differed)" if done.grants_changed
                            else "unchanged (already as listed)"))
    out.print(f"{len(report.applied)} migration(s) applied; the database is up to date")


@app.command("info")
def info_cmd() -> None:
    """Show which PostgreSQL server tokenwatch resolves to, and why."""
    from psycopg.conninfo import conninfo_to_dict

    from tokenwatch.postgres import resolve_server

    server = resolve_server()
    params = {k: v for k, v in conninfo_to_dict(server.dsn).items() if k != "password"}
    out.print(f"source: {server.source}  database: {server.database}  server: {params}")
