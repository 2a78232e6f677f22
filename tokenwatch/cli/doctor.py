"""``tokenwatch doctor``: is this setup ready to run? (``tokenwatch.cli.doctor_checks``)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console()
STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}


def doctor(
    env: str = typer.Option("", "--env", "-e", metavar="ENV",
                            help="local or prod (default: TOKENWATCH_ENV)."),
    component: str = typer.Option("all", "--for", metavar="PART", help=(
        "What to check for: all, service (the state service's pod), pipeline (the code "
        "location and its runs) or reports (the reports API): each runs with its own "
        "secrets.")),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
) -> None:
    """Check every configured connection and permission without changing anything: the state
    database and its roles, the keys, the warehouse and its schemas, the lake, the stream, the
    checkpoint bucket's Object Lock, Datadog, Tableau and the Dagster instance. Prints pass or
    fail with the fix for each failure; exits 1 when anything a run needs is missing."""
    from tokenwatch.cli import doctor_checks
    from tokenwatch.config import ENVIRONMENTS

    if env and env not in ENVIRONMENTS:
        raise typer.BadParameter(f"must be one of {', '.join(ENVIRONMENTS)}, got {env!r}",
                                 param_hint="--env")
    if component not in doctor_checks.COMPONENTS:
        raise typer.BadParameter(f"must be one of {', '.join(doctor_checks.COMPONENTS)}, got "
                                 f"{component!r}", param_hint="--for")
    findings = doctor_checks.run(env or None, component)
    failed = [f for f in findings if f.status == doctor_checks.FAIL]
    if as_json:
        typer.echo(json.dumps({"ok": not failed, "findings": [asdict(f) for f in findings]},
                              indent=2))
    else:
        table = Table(title=f"tokenwatch doctor ({env or 'TOKENWATCH_ENV'}, for {component})",
                      title_justify="left")
        for column in ("check", "status", "detail", "fix"):  # folded, never cut with an ellipsis
            table.add_column(column, overflow="fold")
        for f in findings:
            table.add_row(escape(f.check), f"[{STYLE[f.status]}]{f.status}[/]",
                          escape(f.detail), escape(f.fix))
        out.print(table)
        counts = {s: sum(f.status == s for f in findings) for s in STYLE}
        out.print(", ".join(f"{n} {s}" for s, n in counts.items() if n)
                  + (": not ready, fix what failed" if failed else ": ready"))
    if failed:
        sys.exit(1)
