from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

#: The libraries whose INFO lines the demo keeps out of the terminal (they go to its log file).
LIBRARY_LOGGERS = ("dagster", "dagster_dbt", "great_expectations", "datadog", "httpx", "dbt")


class Story:
    """What the demo prints: one line per phase (with a spinner while it runs, on a terminal
    only), and whatever the phases print in between. Plain text when stdout is not a terminal:
    no spinner, no colour codes."""

    def __init__(self, console: Console, verbose: bool, log_path: Path | None = None):
        self.out = console
        self.verbose = verbose
        self.log_path = None if verbose else log_path
        self.live = console.is_terminal and not verbose

    @contextlib.contextmanager
    def phase(self, what: str) -> Iterator[Callable[[str], None]]:
        """Run one phase; yields ``update(text)`` for its progress (shown on a terminal)."""
        started = time.perf_counter()
        if self.verbose:
            self.out.print(f"[bold cyan]==>[/] {what}")
        try:
            if self.live:
                with self.out.status(what) as status:
                    yield lambda text: status.update(f"{what}: {text}")
            else:
                yield lambda text: None
        except BaseException:
            logging.getLogger("tokenwatch.demo").exception("%s: failed", what)
            self.out.print(f"[bold red]✗[/] {what} [dim]({time.perf_counter() - started:.0f} s)"
                           "[/]" + (f"; the log: {self.log_path}" if self.log_path else ""))
            raise
        if not self.verbose:
            self.out.print(f"[bold green]✓[/] {what} [dim]({time.perf_counter() - started:.0f} s)"
                           "[/]")


def demo(tokens: int = typer.Option(3000, min=50, metavar="N", help="Tokens to simulate."),
         days: int = typer.Option(7, min=2, max=31, metavar="D",
                                  help="Days of traffic, ending yesterday."),
         seed: int = typer.Option(0, metavar="S", help="Simulator seed; 0: one per first day, "
                                  "so a demo run again the same day simulates the same "
                                  "traffic and prints the same numbers."),
         verbose: bool = typer.Option(False, "--verbose", "-v",
                                      help="Show the logs (dbt's, Dagster's, the libraries') "
                                           "as they come, instead of writing them to "
                                           "$TOKENWATCH_HOME/logs/demo.log.")) -> None:
    """The whole walk on one machine: a simulated week, the pipeline, a summary, the gate.

    The local stack, a simulated week with faults, the whole Dagster pipeline, a summary, then
    the quality gate withholding a corrupted partition. The demo has a world of its own
    (database tokenwatch_demo, the local warehouse, the stack's lake and stream), reset at its
    start, so its numbers are what it simulated."""
    from tokenwatch import config

    terminal = sys.stdout.isatty()  # not one: plain lines, unwrapped, no colour codes
    console = Console(file=sys.stdout, width=None if terminal else 110, soft_wrap=not terminal)
    log_path = config.home() / "logs" / "demo.log"
    story = Story(console, verbose, log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _logs(verbose, log_path) as to_log:
        outcome = _run(story, tokens, days, seed, verbose, to_log, log_path)
    console.print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    if not outcome.success:
        raise typer.Exit(1)


@contextlib.contextmanager
def _logs(verbose: bool, log_path: Path) -> Iterator[Callable]:
    """Verbose: logs to stderr at INFO as they come. Otherwise: every log record to
    ``log_path``, and ``to_log()`` a context in which stdout and stderr go there too (dbt's
    output, which dagster-dbt writes to stdout, and Dagster's own handlers)."""
    root = logging.getLogger()
    logging.captureWarnings(True)
    if verbose:
        os.environ.setdefault("DBT_USE_COLORS", "true" if sys.stdout.isatty() else "false")
        yield contextlib.nullcontext
        return
    os.environ["DBT_USE_COLORS"] = "false"  # dbt's lines in a file: no colour codes
    saved = root.handlers[:], root.level
    with log_path.open("w", buffering=1) as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
        for name in LIBRARY_LOGGERS:  # GX logs at INFO per suite: noise even in the file
            logging.getLogger(name).setLevel(logging.WARNING if name == "great_expectations"
                                             else logging.INFO)

        @contextlib.contextmanager
        def to_log():
            with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
                yield

        try:
            yield to_log
        finally:
            root.handlers[:], level = saved
            root.setLevel(level)


def _run(story: Story, tokens: int, days: int, seed: int, verbose: bool, to_log,
         log_path: Path):
    from datetime import UTC, datetime

    from sandbox import stack as local_stack
    from sandbox.demo import steps
    from sandbox.demo import world as demo_world
    from sandbox.simulator.faults import Faults
    from sandbox.simulator.run import Settings
    from tokenwatch.cli.simulate import simulate_into_stack

    out = story.out
    world = demo_world.demo_world()
    demo_world.activate(world)  # this process: the service, ingestion, dbt, the gate
    with story.phase("starting the local stack (moto S3 + Kinesis, Datadog intake, "
                     "PostgreSQL)") as update, to_log():
        stack = local_stack.up(progress=update)
    with story.phase(f"resetting the demo's world: {world.describe()}, the stack's bucket "
                     f"{stack.bucket} and stream {stack.stream}"), to_log():
        demo_world.reset(world, stack)
    from tokenwatch.stack_file import Stack

    stack = Stack.load()
    day_list = steps.week(days)
    first = day_list[0]
    seed = seed or int(first.strftime("%Y%m%d"))
    with story.phase(f"simulating {tokens:,} tokens over {days} days from {first} (seed "
                     f"{seed}), faults on") as update, to_log():
        summary = simulate_into_stack(Settings(
            tokens=tokens, days=days, seed=seed, faults=Faults(),
            start=datetime(first.year, first.month, first.day, tzinfo=UTC)),
            progress=lambda phase, done, total: update(f"{phase} {done:,}/{total:,}"))
    inst = steps.instance()
    outcome = _pipeline(story, steps, day_list, inst, verbose, to_log)
    _summary(out, outcome, summary, stack, day_list)
    day = day_list[-1]
    with story.phase(f"the quality gate: corrupting wallet_provisioning_daily for {day} on "
                     "purpose, publishing it, restoring it"), to_log():
        gate = steps.withhold_a_day(day, inst, stack.intake_records, verbose=verbose)
    _print_gate(out, gate)
    with story.phase("rendering the KPI charts (PNG and SVG) from the warehouse's read "
                     "replica"), to_log():
        charts = steps.render_charts()
    _where_next(out, stack, log_path, verbose, charts)
    return outcome


def _pipeline(story: Story, steps, day_list, inst, verbose: bool, to_log):
    """The pipeline's runs, one phase each."""
    outcome = None
    for what, run in steps.pipeline_runs(day_list):
        with story.phase(what), to_log():
            outcome = steps.run_one(run, inst, outcome, verbose=verbose)
    return outcome


def _summary(out: Console, outcome, summary: dict, stack, day_list) -> None:
    from ingestion.warehouse import open_warehouse
    from orchestration.defs.dbt.assets import mart_relation
    from sandbox.demo import readback as report

    wh = open_warehouse(create=False)
    try:
        wallets = report.wallet_summary(wh, mart_relation, day_list[-1])
        findings = report.audit_findings(wh, mart_relation)
    finally:
        wh.close()
    out.print()
    _print_wallets(out, wallets)
    simulated = summary.get("tokens_per_wallet", {})
    shown = {r["wallet"]: int(r["requests"]) for r in wallets}
    differ = {w: (shown.get(w, 0), n) for w, n in simulated.items() if shown.get(w, 0) != n}
    if differ:
        out.print("[bold red]requests differ from the tokens simulated[/]: " + ", ".join(
            f"{w} {a:,} shown, {b:,} simulated" for w, (a, b) in sorted(differ.items())))
    else:
        out.print(f"requests per wallet = tokens simulated per wallet "
                  f"({sum(simulated.values()):,} in all): the marts hold only this demo's world")
    out.print(f"checks passed: [green]{outcome.checks_passed}[/], failed: "
              f"{len(outcome.checks_failed)}" + "".join(f"\n  {c}" for c in
                                                        outcome.checks_failed))
    out.print(f"KPI points published to the Datadog intake: {outcome.kpi_points:,}")
    out.print("audit exceptions found: " + (", ".join(f"{t} {n}" for t, n in findings)
                                            or "none"))
    out.print(f"simulated: {summary['transitions']['total']:,} transitions, "
              f"{summary['kinesis']['events_unique']:,} wallet events, "
              f"{summary['quarantine_expected']['total']} bad lines (quarantined)")
    out.print()


def plain(markdown: str) -> str:
    """A Datadog event's Markdown as terminal text: no ``%%%`` fences, no ``**``."""
    lines = [line for line in markdown.splitlines() if line.strip() not in ("%%%", "")]
    return re.sub(r"\*\*(.+?)\*\*", r"\1", "\n".join(lines))


def _print_gate(out: Console, story) -> None:
    from rich.markup import escape

    for event in story.withheld:  # one per withheld partition: here, one
        text = plain(event["text"]).splitlines()
        head = text[0] if text else ""
        out.print(f"  [bold red]publication withheld[/] for {story.day}: "
                  f"{escape(head.split(' was withheld: ', 1)[-1])}")
        for line in text[1:]:
            out.print(f"    {escape(line)}"[:600])
    out.print(f"  KPI series sent for {story.day} while corrupted: {story.series_sent}; run "
              f"{'stopped at the gate' if story.stopped else 'succeeded'}; after the repair: "
              f"{'published again' if story.published_again else 'still withheld'}")


def _rel(path: Path | str) -> str:
    path = Path(os.path.abspath(path))  # (not resolved: .venv/bin/python is a symlink)
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _where_next(out: Console, stack, log_path: Path, verbose: bool, charts=()) -> None:
    from rich.markup import escape

    import ingestion.warehouse as warehouse

    bin_dir = Path(sys.executable).parent
    cli = _rel(bin_dir / "tokenwatch")
    replica = getattr(warehouse, "read_replica_path", None)
    path = replica() if replica is not None and replica().exists() else warehouse.duckdb_path()
    kind = "read replica" if path != warehouse.duckdb_path() else "DuckDB file"
    python = _rel(bin_dir / "python")
    query = (f"{python} -c \"import duckdb; duckdb.connect('{_rel(path)}', read_only=True)"
             ".sql('from analytics_published.wallet_provisioning_daily').show()\"")
    out.print("\n[bold]Where to look next[/]")
    rows = [("the command line", f"{cli} --help   (or: source {_rel(bin_dir / 'activate')}, "
                                 "then tokenwatch --help)"),
            ("Dagster UI", "make dagster   then http://localhost:3000 (the demo's runs: Runs, "
                           "filter by tag tokenwatch/source=demo)"),
            ("dbt docs", "make docs      then http://localhost:8081"),
            (f"warehouse ({kind})", _rel(path)),
            ("  from Python", query),
            ("  from Tableau/JDBC", f"jdbc:duckdb:{path.resolve()}  (duckdb.read_only=true)")]
    if charts:
        rows.append(("KPI charts (PNG, SVG)", f"{_rel(charts[0].png.parent)}/   ("
                     + ", ".join(c.png.name for c in charts) + "; in Dagster: asset "
                     "reports/charts)"))
    from reporting.tableau.extract import default_dir

    extracts = sorted(default_dir().glob("*.hyper"))
    if extracts:
        rows.append(("Tableau extracts", f"{_rel(default_dir())}/   ("
                     + ", ".join(e.name for e in extracts) + "; only the days the gate passed; "
                     f"publish: {cli} tableau publish)"))
    rows.append(("reports API", f"TOKENWATCH_REPORT_KEYS=me:<a key of 16+ characters> {cli} "
                 "reports serve   then curl -H 'Authorization: Bearer <the key>' "
                 "http://127.0.0.1:8090/v1/metrics"))
    if not verbose:
        rows.append(("the demo's log", f"{_rel(log_path)}   (or: {cli} demo --verbose)"))
    for name, what in rows:
        out.print(f"  {name:<24} {escape(what)}", soft_wrap=True)
    out.print(f"\nStill running: moto (S3 + Kinesis) at {stack.aws_endpoint}, the Datadog intake "
              f"at {stack.intake_url}" + (", the private PostgreSQL" if stack.pg_source ==
                                          "private" else "")
              + f". Stop them with: {cli} stack down", soft_wrap=True)


def _print_wallets(out: Console, rows: list[dict]) -> None:
    table = Table(title="Per wallet over the simulated period")
    for col in ("wallet", "requests", "provision success", "yellow completion", "API errors",
                "p99 latency (worst day)", "active tokens (last day)"):
        table.add_column(col, justify="left" if col == "wallet" else "right")

    def pct(v):
        return "-" if v is None else f"{float(v):.1%}"

    for r in rows:
        table.add_row(r["wallet"], f"{r['requests']:,}", pct(r["success_rate"]),
                      pct(r["yellow_completion"]), pct(r["error_rate"]),
                      "-" if r["p99_ms"] is None else f"{float(r['p99_ms']):,.0f} ms",
                      "-" if r["active_tokens"] is None else f"{r['active_tokens']:,}")
    out.print(table)
