from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

out = Console()


def _sources(values: list[str]) -> list[str]:
    """``--source``: each one known, or a usage error naming the option (exit 2)."""
    from ingestion.run import SOURCES

    unknown = sorted(set(values) - set(SOURCES))
    if unknown:
        raise typer.BadParameter(f"unknown source(s) {', '.join(unknown)}; expected some of "
                                 f"{', '.join(SOURCES)}")
    return values


def _target(value: str) -> str:
    """``--target`` (or ``TOKENWATCH_WAREHOUSE``): a known warehouse, or a usage error."""
    from tokenwatch.config import WAREHOUSES

    if value and value not in WAREHOUSES:
        raise typer.BadParameter(f"{value!r} is not a warehouse; expected one of "
                                 f"{', '.join(WAREHOUSES)}")
    return value


def ingest(
    source: list[str] = typer.Option([], "--source", "-s", callback=_sources,
                                     metavar="[transitions|wallet_events|s3]",
                                     help="Load only this source (repeatable): transitions, "
                                          "wallet_events, s3. Default: all three."),
    target: str = typer.Option("", "--target", "-t", envvar="TOKENWATCH_WAREHOUSE",
                               callback=_target, metavar="[duckdb|postgres|snowflake]",
                               help="Warehouse: duckdb, postgres or snowflake (default by "
                                    "TOKENWATCH_ENV: duckdb locally, snowflake in prod)."),
    print_schema: bool = typer.Option(False, "--print-schema",
                                      help="Print the raw layer's contract and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print the run report as JSON."),
) -> None:
    """Load the three sources into the warehouse's raw layer, exactly once."""
    from ingestion.run import SOURCES
    from ingestion.run import ingest as run_ingest
    from ingestion.warehouse import open_warehouse, target_name
    from ingestion.world import world_from_env

    if print_schema:
        _print_schema()
        return
    only = tuple(source) or SOURCES
    target = target or target_name()
    sources = world_from_env()
    wh = open_warehouse(target)
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description:>14}"),
                      TextColumn("{task.completed:,} records"), TimeElapsedColumn(),
                      console=out, disable=as_json or not out.is_terminal) as bar:
            tasks = {name: bar.add_task(name, total=None) for name in only}

            def progress(name: str, n: int) -> None:
                bar.update(tasks[name], completed=n)

            report = run_ingest(sources, wh, only, progress)
            for task in tasks.values():
                bar.update(task, total=1, completed=bar.tasks[task].completed)
        if as_json:
            typer.echo(json.dumps(report.as_dict(), indent=2, default=str))
        else:
            _print_report(report, target)
    finally:
        wh.close()


def _print_report(report, target: str) -> None:
    table = Table(title=f"ingested into {target}")
    for col in ("source", "read", "loaded", "duplicates", "quarantined", "seconds", "position"):
        table.add_column(col, justify="left" if col in ("source", "position") else "right")
    for name, res in report.results.items():
        if name == "transitions":
            row = (res.rows_read, res.rows_loaded, res.duplicates, 0,
                   f"xact watermark {res.watermark_from} -> {res.watermark_to}")
        elif name == "wallet_events":
            row = (res.records_read, res.rows_loaded, res.duplicates, res.quarantined,
                   f"{len(res.shards)} shard checkpoint(s) moved")
        else:
            row = (res.objects_seen, res.rows_loaded, res.duplicate_objects, res.quarantined,
                   f"{res.objects_loaded} new object(s), {res.objects_skipped} already loaded")
        table.add_row(name, *(f"{v:,}" if isinstance(v, int) else v for v in row[:4]),
                      f"{report.seconds[name]:.1f}", row[4])
    out.print(table)


def _print_schema() -> None:
    from ingestion.raw_schema import SCHEMA, TABLES

    for t in TABLES.values():
        table = Table(title=f"{SCHEMA}.{t.name}: {t.description}", title_justify="left")
        table.add_column("column")
        table.add_column("type")
        table.add_column("meaning")
        for c in t.columns:
            table.add_row(c.name + (" (key)" if c.name == t.key else ""), c.type, c.description)
        out.print(table)
