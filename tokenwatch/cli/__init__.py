"""``tokenwatch``: one command line for the whole project. ``tokenwatch --help`` lists it."""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console

from tokenwatch.cli import (
    audit,
    datadog_cmd,
    db,
    demo,
    ingest,
    lifecycle_cmd,
    serve,
    simulate,
    stack,
)

app = typer.Typer(help="tokenwatch: a reporting warehouse for payment tokens in digital wallets.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command("serve", help=serve.serve.__doc__)(serve.serve)
app.add_typer(db.app, name="db")
app.add_typer(audit.app, name="audit")
app.add_typer(lifecycle_cmd.app, name="lifecycle")
app.command("demo", help=demo.demo.__doc__)(demo.demo)
app.command("simulate", help=simulate.simulate.__doc__)(simulate.simulate)
app.add_typer(stack.app, name="stack")
app.command("ingest", help=ingest.ingest.__doc__)(ingest.ingest)
app.add_typer(datadog_cmd.app, name="datadog")

err = Console(stderr=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - one readable line and a non-zero exit, no traceback
        err.print(f"[bold red]error:[/] {exc.__class__.__name__}: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
