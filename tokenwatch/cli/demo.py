from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

out = Console(width=110) if not Console().is_terminal else Console()


def demo(tokens: int = typer.Option(3000, min=50, help="Tokens to simulate."),
         days: int = typer.Option(7, min=2, max=31, help="Days of traffic, ending yesterday."),
         seed: int = typer.Option(0, help="Simulator seed; 0: one per first day, so a demo on "
                                  "another day adds new tokens instead of clashing with the "
                                  "event ids recorded by an earlier one.")) -> None:
    """End to end: local stack, a simulated week with faults, the whole Dagster pipeline, a
    summary, then the quality gate withholding a corrupted partition."""
    import logging
    from datetime import UTC, datetime

    from ingestion.warehouse import duckdb_path, open_warehouse
    from sandbox import stack as local_stack
    from sandbox.demo import readback as report
    from sandbox.demo import steps
    from sandbox.simulator.faults import Faults
    from sandbox.simulator.run import Settings
    from tokenwatch.cli.simulate import simulate_into_stack

    logging.getLogger().setLevel(logging.WARNING)  # the demo prints its own story
    logging.getLogger("dagster").setLevel(logging.WARNING)
    started = time.perf_counter()
    say = lambda msg: out.print(f"[bold cyan]==>[/] {msg}")  # noqa: E731
    say("starting the local stack (moto S3 + Kinesis, Datadog intake, PostgreSQL)")
    stack = local_stack.up(progress=lambda m: out.print(f"    {m}"))
    day_list = steps.week(days)
    first = day_list[0]
    seed = seed or int(first.strftime("%Y%m%d"))
    say(f"simulating {tokens} tokens over {days} days from {first}, faults on")
    summary = simulate_into_stack(Settings(
        tokens=tokens, days=days, seed=seed, faults=Faults(),
        start=datetime(first.year, first.month, first.day, tzinfo=UTC)))
    inst = steps.instance()
    outcome = steps.run_pipeline(day_list, inst, say)
    wh = open_warehouse(create=False)
    try:
        from orchestration.defs.dbt.assets import mart_relation

        _print_wallets(report.wallet_summary(wh, mart_relation, day_list[-1]))
        findings = report.audit_findings(wh, mart_relation)
    finally:
        wh.close()
    out.print(f"checks passed: [green]{outcome.checks_passed}[/], failed: "
              f"{len(outcome.checks_failed)}" + "".join(f"\n  {c}" for c in
                                                        outcome.checks_failed))
    out.print(f"KPI points published to the Datadog intake: {outcome.kpi_points} "
              f"(recorded in {stack.intake_records})")
    out.print("audit exceptions found: " + (", ".join(f"{t} {n}" for t, n in findings)
                                            or "none"))
    out.print(f"simulated: {summary['transitions']['total']} transitions, "
              f"{summary['kinesis']['events_unique']} wallet events, "
              f"{summary['quarantine_expected']['total']} bad lines (quarantined)")
    day = day_list[-1]
    say(f"the quality gate: corrupting wallet_provisioning_daily for {day} on purpose")
    _print_gate(steps.withhold_a_day(day, inst, stack.intake_records), say)
    out.print("\n[bold]Where to look next[/]")
    out.print(f"  warehouse (DuckDB):  {duckdb_path()}   e.g. duckdb {duckdb_path()}")
    out.print("  Dagster UI:          make dagster   (the runs above are in it)")
    out.print("  dbt docs:            make docs      (lineage, every column described)")
    out.print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    if not outcome.success:
        raise typer.Exit(1)


def _print_gate(story, say) -> None:
    for event in story.withheld:
        out.print(f"[bold red]publication withheld[/] for {story.day}: {event['title']}")
        text = "\n".join(line for line in event["text"].splitlines() if line.strip("%"))
        out.print("    " + text.replace("\n", "\n    ")[:1200])
    out.print(f"    KPI series sent for {story.day} after corruption: {story.series_sent}; "
              f"run {'stopped at the gate' if story.stopped else 'succeeded'}")
    say(f"restored the partition and re-ran its checks: "
        f"{'published again' if story.published_again else 'still withheld'}")


def _print_wallets(rows: list[dict]) -> None:
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
