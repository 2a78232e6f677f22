from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="The local stack: moto (S3, Kinesis), the Datadog intake, PostgreSQL.",
                  no_args_is_help=True)
out = Console()


def _print(stack) -> None:
    table = Table(show_header=False)
    table.add_row("S3 + Kinesis (moto)", stack.aws_endpoint)
    table.add_row("bucket", f"s3://{stack.bucket}")
    table.add_row("stream", f"{stack.stream} ({stack.shards} shards)")
    table.add_row("Datadog intake", stack.intake_url)
    table.add_row("intake records", stack.intake_records)
    table.add_row("PostgreSQL", f"{stack.pg_source}: {_safe(stack.pg_dsn)}")
    out.print(table)


def _safe(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**params)


@app.command("up")
def up_cmd() -> None:
    """Start the stack (or reuse the running one) and write $TOKENWATCH_HOME/stack.json."""
    from sandbox.stack import up
    from tokenwatch.stack_file import Stack

    if out.is_terminal:
        with out.status("starting the local stack") as status:
            stack = up(progress=lambda msg: status.update(msg))
    else:  # no spinner into a file: the steps as lines
        stack = up(progress=out.print)
    _print(stack)
    out.print(f"endpoints written to {Stack.path()}")


@app.command("down")
def down_cmd() -> None:
    """Stop everything `stack up` started. Safe to run when nothing is up."""
    from sandbox.stack import down

    stopped = down()
    out.print("stopped: " + ", ".join(stopped) if stopped else "nothing was running")


@app.command("status")
def status_cmd(as_json: bool = typer.Option(False, "--json", help="Print the endpoints and "
                                            "each part's state as JSON.")) -> None:
    """Show the endpoints and whether each part answers. Exit 1 when something is down."""
    import json

    from sandbox.stack import health
    from tokenwatch.stack_file import Stack, StackError

    try:
        stack = Stack.load()
    except StackError as exc:
        if as_json:
            typer.echo(json.dumps({"up": False, "error": str(exc)}, indent=2))
        else:
            out.print(str(exc))
        raise typer.Exit(1) from exc
    states = health(stack)
    if as_json:
        typer.echo(json.dumps({
            "up": all(state == "ok" for state in states.values()),
            "aws_endpoint": stack.aws_endpoint, "bucket": stack.bucket, "stream": stack.stream,
            "shards": stack.shards, "intake_url": stack.intake_url,
            "intake_records": stack.intake_records, "pg_source": stack.pg_source,
            "pg_dsn": _safe(stack.pg_dsn), "processes": stack.processes, "health": states},
            indent=2))
        if any(state != "ok" for state in states.values()):
            raise typer.Exit(1)
        return
    _print(stack)
    for name, state in states.items():
        out.print(f"{name:>15}: " + ("[green]ok[/]" if state == "ok" else f"[red]{state}[/]"))
    if any(state != "ok" for state in states.values()):
        raise typer.Exit(1)
