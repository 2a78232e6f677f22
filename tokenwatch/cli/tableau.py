from __future__ import annotations

import contextlib
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(help="Tableau: write the .hyper extracts of the exposures, publish them.",
                  no_args_is_help=True)
out = Console()


def _default_dir() -> Path:
    from reporting.tableau.extract import default_dir

    return default_dir()


def _days(days) -> str:
    if not days:
        return "none"
    return f"{days[0]} .. {days[-1]} ({len(days)})" if len(days) > 2 else \
        ", ".join(str(d) for d in days)


@app.command("extract")
def extract_cmd(
    out_dir: Path = typer.Option(None, "--out", metavar="DIR", file_okay=False,
                                 help="Where the .hyper files go (default: "
                                 "$TOKENWATCH_HOME/tableau)."),
) -> None:
    """Write one .hyper file per Tableau exposure, from the marts, holding only the days the
    quality gate passed."""
    from orchestration.defs.dbt.assets import mart_relation
    from reporting.tableau.extract import open_marts, write_extracts

    target = out_dir or _default_dir()
    with (out.status("writing the extracts") if out.is_terminal else contextlib.nullcontext()), \
            open_marts() as wh:
        written = write_extracts(wh, mart_relation, target)
    table = Table("file", "table", "rows", "rows kept")
    for extract in written:
        for i, t in enumerate(extract.tables):
            table.add_row(extract.path.name if i == 0 else "", t.model, f"{t.rows:,}",
                          escape(t.filter))
    out.print(table)
    for extract in written:
        out.print(f"{extract.path.name}: days held {_days(extract.days_held)}; "
                  f"left out (not passed by the gate) {_days(extract.days_left_out)}")
    out.print(escape(f"in {target}"))


@app.command("publish")
def publish_cmd(
    project: str = typer.Option(None, metavar="NAME",
                                help="The Tableau project (default: TOKENWATCH_TABLEAU_PROJECT, "
                                "else tokenwatch)."),
    out_dir: Path = typer.Option(None, "--from", metavar="DIR", file_okay=False,
                                 help="Where the .hyper files are (default: "
                                 "$TOKENWATCH_HOME/tableau)."),
) -> None:
    """Publish the extracts (as written by `tableau extract`) to Tableau Server or Cloud, each
    a data source in Overwrite mode; the project is created when missing."""
    from reporting.tableau.exposures import extracts
    from reporting.tableau.publish import publish, target

    source = out_dir or _default_dir()
    files = [source / e.file for e in extracts()]
    missing = [f.name for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not in {source}: run "
                                "`tokenwatch tableau extract` first")
    to = target(project)
    with (out.status(f"publishing to {to.server_url}") if out.is_terminal
          else contextlib.nullcontext()):
        published = publish(files, to)
    table = Table("data source", "file", "size", "id")
    for item in published:
        table.add_row(escape(item.name), item.file.name, f"{item.bytes / 1024:,.0f} KiB",
                      item.datasource_id)
    out.print(table)
    out.print(escape(f"in project {to.project!r} at {to.server_url}"
                     f"{f' (site {to.site})' if to.site else ''}"))
