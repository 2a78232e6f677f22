"""The end-to-end demo, as plain steps: the whole Dagster pipeline in process on the persistent
instance over a simulated week, and the quality gate withholding a corrupted partition.
``tokenwatch demo`` prints what these return."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import dagster as dg

PARTITION_RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
#: Every run the demo starts carries this tag: in the UI, Runs > Filter > tag
#: ``tokenwatch/source=demo`` lists exactly the demo's runs.
DEMO_TAG = {"tokenwatch/source": "demo"}
#: The demo prints its own summary: Dagster's event log stays in the instance (make dagster).
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
#: ``tokenwatch demo --verbose``: Dagster's console logger as it is by default.
VERBOSE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def run_config(verbose: bool = False) -> dict:
    return VERBOSE if verbose else QUIET


@dataclass
class PipelineOutcome:
    success: bool
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    kpi_points: int = 0
    runs: list[str] = field(default_factory=list)


def instance() -> dg.DagsterInstance:
    """The instance ``make dagster`` opens (DAGSTER_HOME), else a throwaway one."""
    from tokenwatch import config

    return dg.DagsterInstance.get() if config.settings().dagster_home else (
        dg.DagsterInstance.ephemeral())


def pipeline_runs(days: list[date]) -> list[tuple[str, tuple[str, dict] | None]]:
    """The demo's runs in order, each with what it does: ingestion, then the marts, the gate
    and publication over ``days`` as one backfill run, then the dashboards and monitors
    (``None``: materialized on its own)."""
    return [("loading the three sources into the raw layer (ingest)", ("ingest", {})),
            (f"dbt build, quality gate and KPI publication for {days[0]}..{days[-1]} "
             "(marts_and_kpis, one backfill run)",
             ("marts_and_kpis", dict(zip(PARTITION_RANGE, (days[0].isoformat(),
                                                           days[-1].isoformat()), strict=True)))),
            ("pushing the Datadog dashboards and monitors", None)]


def run_one(run: tuple[str, dict] | None, inst: dg.DagsterInstance,
            outcome: PipelineOutcome | None = None, *, verbose: bool = False
            ) -> PipelineOutcome:
    """One of ``pipeline_runs``, its results added to ``outcome`` (a new one when None)."""
    from orchestration.definitions import defs

    outcome = outcome or PipelineOutcome(success=True)
    if run is None:
        from orchestration.defs.publication.assets import datadog_as_code

        result = dg.materialize([datadog_as_code], instance=inst, resources=defs.resources,
                                run_config=run_config(verbose), tags=DEMO_TAG)
    else:
        job_name, tags = run
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=inst, tags={**DEMO_TAG, **tags}, raise_on_error=False,
            run_config=run_config(verbose))
    _collect(result, outcome)
    return outcome


def run_pipeline(days: list[date], inst: dg.DagsterInstance,
                 say: Callable[[str], None], *, verbose: bool = False) -> PipelineOutcome:
    """Every one of ``pipeline_runs``, saying what each does first."""
    outcome = PipelineOutcome(success=True)
    for what, run in pipeline_runs(days):
        say(what)
        run_one(run, inst, outcome, verbose=verbose)
    return outcome


def _collect(result, outcome: PipelineOutcome) -> None:
    outcome.runs.append(result.run_id)
    outcome.success = outcome.success and result.success
    for check in result.get_asset_check_evaluations():
        if check.passed:
            outcome.checks_passed += 1
        else:
            outcome.checks_failed.append(f"{check.asset_key.to_user_string()}:{check.check_name}"
                                         f" {check.description or ''}"[:300])
    for event in result.get_asset_materialization_events():
        points = event.materialization.metadata.get("points")
        if points is not None:
            outcome.kpi_points += int(points.value)


def republish(day: date, inst: dg.DagsterInstance, *, verbose: bool = False):
    """The ``republish`` job for ``day``, then publication's sensor on its outcome (the daemon
    would evaluate it: a run the gate stopped sends the "publication withheld" event)."""
    from orchestration.definitions import defs
    from orchestration.defs.publication.sensors import evaluate_after

    result = defs.resolve_job_def("republish").execute_in_process(
        instance=inst, partition_key=day.isoformat(), raise_on_error=False,
        run_config=run_config(verbose), tags=DEMO_TAG)
    evaluate_after(result, inst, defs.resources["datadog"])
    return result


@dataclass
class GateStory:
    """The gate shown at work on one day: corrupted, withheld, restored, published again."""

    day: date
    withheld: list[dict]  # the "publication withheld" events the intake received
    series_sent: int  # KPI series requests that reached the intake for the corrupted day
    stopped: bool  # the corrupted run stopped at the gate
    published_again: bool  # after the repair, the day's republish succeeded


def withhold_a_day(day: date, inst: dg.DagsterInstance, intake_records: str, *,
                   verbose: bool = False) -> GateStory:
    """Corrupt ``day``'s provisioning mart, republish it (the gate must withhold it), restore
    it, and republish again."""
    from ingestion.warehouse import open_warehouse
    from orchestration.defs.dbt.assets import mart_relation
    from sandbox.demo.corruption import corrupt_success_rate, restore_success_rate
    from sandbox.demo.readback import withheld_events
    from sandbox.intake import read_records

    wh = open_warehouse(create=False)
    try:
        saved = corrupt_success_rate(wh, mart_relation, day)
    finally:
        wh.close()
    before = len(read_records(intake_records))
    result = republish(day, inst, verbose=verbose)
    records = read_records(intake_records)[before:]
    wh = open_warehouse(create=False)
    try:
        restore_success_rate(wh, mart_relation, day, saved)
    finally:
        wh.close()
    again = republish(day, inst, verbose=verbose)
    return GateStory(day, withheld_events(records),
                     sum(1 for r in records if r["path"].endswith("/series")),
                     not result.success, again.success)


def week(days: int) -> list[date]:
    from datetime import UTC, datetime

    today = datetime.now(UTC).date()
    return [today - timedelta(days=days - i) for i in range(days)]


class ReplicaReader:
    """The DuckDB read replica, opened read-only, with the warehouse's ``query`` (``%s``
    placeholders): what a reader of the marts opens, never the loaders' file."""

    def __init__(self, path):
        from ingestion.warehouse.duckdb import connect

        self.con = connect(path, read_only=True)

    def query(self, sql: str, params=None) -> list[tuple]:
        return self.con.execute(sql.replace("%s", "?"), params or []).fetchall()

    def close(self) -> None:
        self.con.close()


def render_charts(out_dir=None):
    """The KPI charts of the demo's warehouse, read from its read replica, written as PNG and
    SVG into ``out_dir`` (default ``$TOKENWATCH_HOME/charts``, where the Dagster asset
    ``reports/charts`` writes them too); returns the files (``reporting.charts.ChartFiles``)."""
    from ingestion.warehouse import read_replica_path
    from orchestration.defs.charts.assets import CHARTS_DIR_NAME
    from orchestration.defs.dbt.assets import mart_relation
    from reporting.charts import render_kpi_charts
    from tokenwatch import config

    reader = ReplicaReader(read_replica_path())
    try:
        return render_kpi_charts(reader, mart_relation,
                                 out_dir or config.home() / CHARTS_DIR_NAME)
    finally:
        reader.close()
