from __future__ import annotations

import sys
import time

import typer
from rich.console import Console

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
