"""``tokenwatch``: one command line for the whole project. ``tokenwatch --help`` lists it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import typer
from rich.console import Console

from tokenwatch.cli import (
    audit,
    datadog_cmd,
    db,
    demo,
    doctor,
    ingest,
    lifecycle_cmd,
    reports,
    serve,
    simulate,
    stack,
    tableau,
)

app = typer.Typer(help="tokenwatch: a reporting warehouse for payment tokens in digital wallets.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command("serve", help=serve.serve.__doc__)(serve.serve)
app.add_typer(db.app, name="db")
app.add_typer(audit.app, name="audit")
app.add_typer(lifecycle_cmd.app, name="lifecycle")
app.command("demo", help=demo.demo.__doc__)(demo.demo)
app.command("doctor", help=doctor.doctor.__doc__)(doctor.doctor)
app.command("simulate", help=simulate.simulate.__doc__)(simulate.simulate)
app.add_typer(stack.app, name="stack")
app.command("ingest", help=ingest.ingest.__doc__)(ingest.ingest)
app.add_typer(datadog_cmd.app, name="datadog")
app.add_typer(reports.app, name="reports")
app.add_typer(tableau.app, name="tableau")

err = Console(stderr=True)


def _walk(command) -> Iterator:
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _walk(sub)


def command():
    """The command line as click sees it, with a metavar on every option: typer shows a type
    placeholder (``<bool>``, ``<str>``, ``<list[str]>``) where none is given, and a flag, which
    takes no value, shows none (``--json``, ``--help``); an option without its own metavar
    shows its name (``--host HOST``)."""
    from typer.main import get_command

    root = get_command(app)
    for cmd in _walk(root):
        ctx = type(root.context_class(root))(cmd, info_name=cmd.name)
        params = [*cmd.params, cmd.get_help_option(ctx)]
        for param in params:
            if param is not None and param.param_type_name == "argument" and param.metavar:
                # an argument's metavar names it (``DIR``): no type placeholder beside it
                param.display_type_rich = lambda ctx: None
            if param is None or param.metavar is not None:
                continue
            if getattr(param, "is_flag", False) or getattr(param, "count", False):
                param.metavar = ""
            elif param.param_type_name == "option":
                param.metavar = (param.name or "value").upper()
    return root


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "metricflow", "metricflow_semantics"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        command()(prog_name="tokenwatch")
    except Exception as exc:  # noqa: BLE001 - one readable line and a non-zero exit, no traceback
        err.print(f"[bold red]error:[/] {exc.__class__.__name__}: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
