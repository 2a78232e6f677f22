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


#: Why each source was chosen (``tokenwatch.postgres``'s resolution order).
WHY = {
    "env": "TOKENWATCH_PG_DSN is set: used as given, its dbname is the state service's",
    "local": "TOKENWATCH_PG_DSN is unset and a server answered on 127.0.0.1:5432",
    "private": "TOKENWATCH_PG_DSN is unset and nothing answered on 127.0.0.1:5432: a private "
               "server under $TOKENWATCH_HOME/pg (pgserver), running until `tokenwatch stack "
               "down`",
}


def server_info() -> dict:
    """Which PostgreSQL tokenwatch resolves to and why, with no password: what ``db info``
    prints (``--json``: this dict)."""
    from psycopg.conninfo import conninfo_to_dict

    from state_service import roles
    from tokenwatch import config
    from tokenwatch.postgres import resolve_server

    server = resolve_server()
    params = conninfo_to_dict(server.dsn)
    info = {"source": server.source, "why": WHY.get(server.source, server.source),
            "host": params.get("host") or params.get("hostaddr") or "(libpq default)",
            "port": params.get("port") or "5432", "user": params.get("user") or "(libpq default)",
            "database": server.database}
    settings = config.settings()
    for role in (roles.SERVICE, roles.READER):
        explicit = roles.explicit_dsn(role, settings)
        info[role] = (f"{roles.DSN_ENV[role]} (set)" if explicit
                      else f"the admin's DSN with user {role}")
    try:
        from tokenwatch.stack_file import Stack, StackError

        info["stack_database"] = conninfo_to_dict(Stack.load().pg_dsn).get("dbname")
    except (StackError, OSError):
        info["stack_database"] = None
    return info


@app.command("info")
def info_cmd(as_json: bool = typer.Option(False, "--json", help="Print it as JSON.")) -> None:
    """Show which PostgreSQL server tokenwatch resolves to, and why."""
    import json

    from rich.markup import escape
    from rich.table import Table

    info = server_info()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    table = Table(show_header=False, title="PostgreSQL", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("server", escape(f"{info['host']}:{info['port']} as {info['user']}"))
    table.add_row("database", escape(info["database"] + (
        " (TOKENWATCH_PG_DATABASE)" if info["source"] != "env" else " (TOKENWATCH_PG_DSN's)")))
    table.add_row("chosen because", escape(f"{info['source']}: {info['why']}"))
    for key in ("tokenwatch_service", "tokenwatch_reader"):
        table.add_row(f"{key} connects with", escape(info[key]))
    stack_db = info["stack_database"]
    table.add_row("the local stack reads",
                  escape(f"database {stack_db} (stack.json)" if stack_db else "no stack is up"))
    out.print(table)
