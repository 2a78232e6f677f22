from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Compliance checks on the state service's records.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _checkpoint_store():
    """The S3 client and bucket of the checkpoints: the local stack's, or AWS's in prod."""
    from state_service.checkpoints import audit_bucket, ensure_bucket
    from tokenwatch import config

    if config.env_name() == "local":
        from tokenwatch.stack_file import Stack

        s3 = Stack.load().s3_client()
        ensure_bucket(s3, audit_bucket())  # the local stand-in of the provisioned bucket
        return s3, audit_bucket()
    import boto3

    return boto3.client("s3"), audit_bucket()


def _source_dsn(fallback) -> str:
    """The state service's database the warehouse was loaded from, as the reader role: the
    sources' (ingestion/world.py; locally the stack's, the demo's after ``make demo``), else
    the service's configured one."""
    from ingestion.world import world_from_env

    try:
        return world_from_env().pg_dsn
    except Exception:  # noqa: BLE001 - no stack file or sources configured: the service's own
        return fallback()


@app.command("verify")
def verify_cmd(
    checkpoints: bool = typer.Option(True, help="Check against the checkpoints in S3 (without "
                                     "them, deleted last rows cannot be seen)."),
    since: int = typer.Option(None, metavar="SEQ",
                              help="Only the tokens written to after checkpoint SEQ (the daily "
                              "run; a token erased whole needs the full run)."),
) -> None:
    """Verify the transition log: its chain, its seals and the checkpoints. Names every finding.
    Exit 0 intact, 1 tampered, 2 could not check."""
    from state_service.audit import verify_log
    from state_service.server import reader_dsn_from_env
    from state_service.verify import CannotVerify
    from tokenwatch import config

    started = time.monotonic()

    def progress(rows: int) -> None:
        if sys.stderr.isatty():
            rate = rows / max(time.monotonic() - started, 1e-6)
            err.print(f"verified {rows:,} rows ({rate:,.0f}/s)", end="\r")

    try:
        _, keyring = config.chain_keys()
        s3, bucket = _checkpoint_store() if checkpoints else (None, None)
        if s3 is not None:
            s3.head_bucket(Bucket=bucket)
        if since is not None and s3 is None:
            raise CannotVerify("--since needs the checkpoints")
        result = verify_log(reader_dsn_from_env(), keyring, s3, bucket, progress, since)
    except CannotVerify as exc:
        out.print(f"[yellow]could not verify:[/] {exc}")
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001 - no database, no bucket, no key: exit 2, said why
        out.print(f"[yellow]could not verify:[/] {exc.__class__.__name__}: {exc}")
        raise typer.Exit(2) from None
    for finding in result.findings:
        out.print(f"[red]TAMPERED[/] {finding}")
    seconds = time.monotonic() - started
    summary = (f"verified {result.rows:,} row(s) of {result.tokens:,} token(s) against "
               f"{result.checkpoints} checkpoint(s) ({result.checkpointed_rows:,} rows) in "
               f"{seconds:.1f} s: ")
    if s3 is not None and result.checkpoints == 0:
        out.print("[yellow]no checkpoint yet[/]: a deleted last row cannot be seen until one "
                  "is taken (tokenwatch audit checkpoint)")
    if result.ok:
        out.print(summary + "[green]intact[/]")
        return
    kinds = ", ".join(f"{k}: {n}" for k, n in sorted(result.by_kind().items()))
    out.print(summary + f"[red]{len(result.findings)} finding(s)[/] ({kinds})")
    raise typer.Exit(1)


@app.command("checkpoint")
def checkpoint_cmd() -> None:
    """Record every row sealed since the last checkpoint, in S3 under Object Lock and in the
    warehouse (raw.chain_checkpoints)."""
    from ingestion.sources.checkpoints import loader
    from ingestion.warehouse import open_warehouse
    from state_service.checkpoints import take_checkpoint
    from state_service.server import reader_dsn_from_env
    from tokenwatch import config

    s3, bucket = _checkpoint_store()
    wh = open_warehouse()
    try:
        cp = take_checkpoint(reader_dsn_from_env(), s3, bucket, config.chain_keys(), loader(wh))
    finally:
        wh.close()
    out.print(f"checkpoint {cp.seq}: {cp.rows:,} row(s), digest {cp.digest[:16]}..., "
              f"s3://{bucket}/{cp.key.partition('?')[0]} (locked)")


def _day(value: str, option: str):
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a day (YYYY-MM-DD)", param_hint=option
                                 ) from None


@app.command("report")
def report_cmd(
    day_from: str = typer.Option(..., "--from", metavar="DAY", help="First day (UTC), "
                                 "YYYY-MM-DD."),
    day_to: str = typer.Option(..., "--to", metavar="DAY", help="Last day (UTC), inclusive."),
    fmt: str = typer.Option("pdf", "--format", metavar="pdf|html",
                            help="pdf: the HTML report and its PDF; html: the HTML only."),
    out_dir: Path = typer.Option(None, "--out", metavar="DIR",
                                 help="Where the pack folder goes (default "
                                 "TOKENWATCH_AUDIT_PACK_DIR, else $TOKENWATCH_HOME/audit-packs)."),
    checkpoints: bool = typer.Option(True, help="Verify PostgreSQL against the checkpoints in "
                                     "S3 (without them, 10.3.4 is not checked)."),
) -> None:
    """Build the audit pack of a period: report (HTML, PDF), CSV evidence, charts and a
    manifest, from the warehouse (DuckDB: the read replica) and the state service's database
    as the reader role. Exit 0 every control passed, 1 a control failed or was not checked."""
    import getpass
    import logging

    from reporting.api.relations import relation
    from reporting.audit_pack import build_pack
    from reporting.audit_pack.pci import CONTROLS
    from reporting.tableau.extract import open_marts
    from state_service.server import reader_dsn_from_env
    from tokenwatch import config

    start, end = _day(day_from, "--from"), _day(day_to, "--to")
    if fmt not in ("pdf", "html"):
        raise typer.BadParameter(f"{fmt!r}: expected pdf or html", param_hint="--format")
    store = _checkpoint_store() if checkpoints else None
    logging.getLogger("weasyprint").setLevel(logging.WARNING)  # its progress, page by page
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    with open_marts() as wh:
        pack = build_pack(wh, relation=relation, start=start, end=end,
                          out_dir=out_dir or config.audit_pack_dir(),
                          pg_dsn=_source_dsn(reader_dsn_from_env),
                          formats=("pdf", "html") if fmt == "pdf" else ("html",),
                          generated_by=f"{getpass.getuser()} (tokenwatch audit report)",
                          checkpoint_store=store)
    table = Table("control", "verdict", "what it checks", box=None, pad_edge=False)
    colour = {"pass": "green", "fail": "red"}
    for control, verdict in pack.controls.items():
        table.add_row(control, f"[{colour.get(verdict, 'yellow')}]{verdict}[/]",
                      CONTROLS[control])
    out.print(table)
    for finding in pack.summary["findings"]:
        out.print(f"[red]finding[/] {finding}")
    out.print(f"pack: {pack.directory} (report {pack.report_pdf or pack.report_html})")
    if not pack.passed:
        raise typer.Exit(1)


@app.command("check-pack")
def check_pack_cmd(directory: Path = typer.Argument(..., metavar="DIR",
                                                    help="The pack's folder.")) -> None:
    """Verify an audit pack against its manifest: every file's sha256, nothing missing,
    nothing extra. Exit 0 verified, 1 problems (each file named)."""
    from reporting.audit_pack import check_pack
    from reporting.audit_pack.manifest import NAME

    problems = check_pack(directory)
    if not problems:
        import json

        files = json.loads((directory / NAME).read_text())["files"]
        out.print(f"[green]verified[/]: {len(files)} file(s) of {directory} match {NAME}")
        return
    table = Table("file", "problem", box=None, pad_edge=False)
    for problem in problems:
        name, _, what = problem.partition(": ")
        table.add_row(name, f"[red]{what or name}[/]")
    out.print(table)
    out.print(f"[red]{len(problems)} problem(s)[/]: {directory} does not verify")
    raise typer.Exit(1)
