from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

out = Console()


def _day(value: str) -> str:
    """``--start``: a day, or a usage error naming the option."""
    if value:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a day (YYYY-MM-DD)") from None
    return value


def _faults(values: list[str]) -> list[str]:
    """``--fault``: each ``name=rate`` checked now, so a typo is a usage error (exit 2)."""
    from sandbox.simulator.faults import Faults

    try:
        Faults.parse(values)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return values


def simulate(
    tokens: int = typer.Option(2000, min=1, metavar="N", help="Tokens to provision."),
    days: int = typer.Option(7, min=1, max=90, metavar="D", help="Days of traffic."),
    seed: int = typer.Option(42, metavar="S",
                             help="Random seed: the same seed gives the same traffic."),
    start: str = typer.Option("", metavar="YYYY-MM-DD", callback=_day,
                              help="First day (UTC); default: DAYS days ago."),
    faults: bool = typer.Option(True, "--faults/--no-faults", help="Inject faults."),
    fault: list[str] = typer.Option([], metavar="NAME=RATE", callback=_faults,
                                    help="Override one fault rate, e.g. retries=0.05 "
                                    "(repeatable; see the README for the names)."),
    service_url: str = typer.Option("", envvar="TOKENWATCH_SERVICE_URL", metavar="URL",
                                    help="A running state service; default: start one here."),
    api_key: str = typer.Option("", envvar="TOKENWATCH_API_KEY", metavar="KEY",
                                help="Bearer key for --service-url."),
    summary: Path = typer.Option(None, metavar="FILE", help="Where to write the summary JSON; "
                                 "default $TOKENWATCH_HOME/simulation-summary.json."),
) -> None:
    """Generate realistic, deterministic traffic into the local stack (service, Kinesis, S3)."""
    from sandbox.simulator.faults import Faults
    from sandbox.simulator.run import Settings
    from tokenwatch import config

    first = (date.fromisoformat(start) if start
             else datetime.now(UTC).date() - timedelta(days=days))
    settings = Settings(tokens=tokens, days=days, seed=seed,
                        start=datetime(first.year, first.month, first.day, tzinfo=UTC),
                        faults=Faults.parse(fault, Faults() if faults else Faults.none()))
    result = simulate_into_stack(settings, service_url, api_key)
    path = summary or config.home() / "simulation-summary.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    _print_summary(result)
    out.print(f"summary written to {path}")


def simulate_into_stack(settings, service_url: str = "", api_key: str = "",
                        progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run a simulation into the running local stack (starting a state service in this process
    unless ``service_url`` names one), with a progress display (on a terminal; or
    ``progress(phase, done, total)`` instead, saying nothing itself); return the summary."""
    from ingestion.world import World
    from sandbox.simulator.run import simulate as run_simulation
    from tokenwatch.stack_file import Stack, record_data_start

    stack = Stack.load()
    record_data_start(settings.start.date())  # where the daily partitions start
    with ExitStack() as stack_ctx:
        if not service_url:
            from state_service.app import create_app
            from state_service.server import (
                ServiceThread,
                migrate_if_admin,
                service_dsn_from_env,
            )

            api_key = secrets.token_urlsafe(24)
            migrate_if_admin()  # the service's role cannot: migrate as the admin first
            svc = stack_ctx.enter_context(ServiceThread(create_app(
                service_dsn_from_env(), api_keys=[api_key], run_migrations=False)))
            service_url = svc.url
        target = World(pg_dsn="", kinesis=stack.kinesis_client(), stream=stack.stream,
                       s3=stack.s3_client(), bucket=stack.bucket, service_url=service_url,
                       api_key=api_key)
        if progress is not None:
            return run_simulation(settings, target, progress)
        out.print(f"simulating {settings.tokens} tokens over {settings.days} days from "
                  f"{settings.start.date()} (seed {settings.seed}) "
                  f"into {service_url}, stream {stack.stream}, bucket {stack.bucket}")
        with Progress(TextColumn("{task.description:>14}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=out, disable=not out.is_terminal) as bar:
            tasks: dict[str, int] = {}

            def show(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(phase, total=total)
                bar.update(tasks[phase], completed=done, total=total)

            result = run_simulation(settings, target, show)
    return result


def _print_summary(s: dict) -> None:
    table = Table(title=f"{s['tokens']} tokens, {s['days']} days, seed {s['seed']}")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [("transitions recorded", s["service"]["recorded"]),
            ("retries answered 200", s["service"]["replayed"]),
            ("illegal moves refused", s["service"]["refused_illegal"]),
            ("wallet events (unique)", s["kinesis"]["events_unique"]),
            ("Kinesis records put", s["kinesis"]["records_put"]),
            ("  duplicates / late / out of order",
             f"{s['kinesis']['duplicates']} / {s['kinesis']['late']} / "
             f"{s['kinesis']['out_of_order']}")]
    for src, c in s["s3"].items():
        rows.append((f"S3 {src} records / objects",
                     f"{c['records']} / {c['objects']} (+{c['duplicate_objects']} re-delivered)"))
    rows.append(("lines to be quarantined", s["quarantine_expected"]["total"]))
    for what, n in rows:
        table.add_row(what, str(n))
    for wallet, n in s["tokens_per_wallet"].items():
        table.add_row(f"tokens {wallet}", str(n))
    out.print(table)
    out.print(f"took {s['run']['seconds']} s")
