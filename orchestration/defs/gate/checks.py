"""The quality gate: blocking checks on the KPI marts of a partition, run before publication.

One multi-asset check evaluates, for each day of the run's partition range: the GX suite of
each KPI mart (rates in [0, 1], row counts within bounds of the previous partition, keys not
null and unique, accepted wallets, latency percentiles ordered), the reconciliation of the
transition log with PostgreSQL up to the extraction watermark, and the PAN scan. Every check is
``blocking``: when one fails, the publish asset does not run. The gate only reports (each
result names its partition in its metadata); publication's sensor
(orchestration/defs/publication/sensors.py) sends the one Datadog event saying that the
partition's publication was withheld and why.

Results are recorded per day, also when a run covers a range of days (a backfill runs as one
run, ``BackfillPolicy.single_run``): each check yields one evaluation per day
(orchestration/check_results.py says why ``AssetCheckResult`` alone cannot), with that day's
verdict, the full metadata when it failed and a compact count when it passed. The
reconciliation and the PAN scan look at the whole warehouse: their one verdict is each day's.
"""

from datetime import date, timedelta

import dagster as dg

from orchestration.check_results import by_partition
from orchestration.partitions import DAILY
from orchestration.resources import WAREHOUSE_POOL, SourcesResource, WarehouseResource
from quality import verdicts
from quality.result import CheckResult
from tokenwatch import kpis


def _mart_key(model: str) -> tuple[str, ...]:
    from orchestration.defs.dbt.assets import TRANSLATOR, manifest

    return tuple(TRANSLATOR.get_asset_key(manifest()["nodes"][f"model.tokenwatch.{model}"]).path)


#: asset key -> (day column, mart): the KPI marts the dbt project declares ``gated``
#: (tokenwatch/kpis.py); each one's suite is quality.suites.kpi_suite(mart)
KPI_SUITES = {_mart_key(mart.model): (mart.day_column, mart.model)
              for mart in kpis.contract().gated}
RECONCILED = ("lifecycle", "fct_token_state_transitions")
PAN_SCANNED = ("compliance", "audit_exceptions")
GATED_ASSETS = [dg.AssetKey(list(k)) for k in (*KPI_SUITES, RECONCILED, PAN_SCANNED)]


def _spec(key: tuple[str, str], name: str, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=dg.AssetKey(list(key)), blocking=True,
                             partitions_def=DAILY, description=description)


SPECS = [_spec(k, "kpi_suite", "Great Expectations suite of this KPI mart, per day.")
         for k in KPI_SUITES] + [
    _spec(RECONCILED, "reconciled_with_source",
          "Transitions in the warehouse equal those in PostgreSQL up to the watermark."),
    _spec(PAN_SCANNED, "no_pan_in_warehouse",
          "No PAN-like value in any text column of the raw layer and the marts.")]


def published_schema() -> str:
    """The analysts' schema beside the build schemas: ``<target schema>_published``."""
    from orchestration.defs.dbt.assets import mart_relation

    return mart_relation("dim_wallet").split(".")[0].removesuffix("_wallet") + "_published"


def days_of(window) -> list[date]:
    day, days = window.start.date(), []
    while day < window.end.date():
        days.append(day)
        day += timedelta(days=1)
    return days


def partition_label(days: list[date]) -> str:
    """How events and logs name a run's partition: one day, or a range."""
    return f"{days[0]}..{days[-1]}" if len(days) > 1 else str(days[0])


def kpi_suite_by_day(wh, relation: str, day_column: str, mart: str,
                     days: list[date]) -> dict[date, CheckResult]:
    """The mart's suite on each day, its own result per day."""
    from quality import suites
    from quality.expectations import run_suite
    from quality.partitions import previous_partition_count, read_partition

    results = {}
    for day in days:
        previous = previous_partition_count(wh, relation, day_column, day)
        suite = suites.kpi_suite(mart, previous_count=previous)
        results[day] = run_suite(read_partition(wh, relation, day_column, day), suite)
    return results


def day_result(day: date, result: CheckResult) -> dg.AssetCheckResult:
    """A day's verdict as a check result: its partition, the scalar counts (rows,
    expectations, candidate rows...) and, when it failed, everything observed."""
    metadata: dict = {"partition": day.isoformat()}
    for name, value in result.metadata.items():
        if isinstance(value, bool | int | float | str) and name != "partition":
            metadata[name] = value
    if not result.passed:
        metadata["observed"] = dg.MetadataValue.json(result.metadata)
    return dg.AssetCheckResult(passed=result.passed, description=result.summary[:2000],
                               metadata=metadata)


@dg.multi_asset_check(specs=SPECS, name="quality_gate", can_subset=True, pool=WAREHOUSE_POOL,
                      description="Blocking quality checks that gate KPI publication.")
def quality_gate(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                 sources: SourcesResource):
    from orchestration.defs.dbt.assets import mart_relation
    from quality.pan_scan import scan_for_pans
    from quality.reconcile import reconcile_transitions
    from reporting.published import publish

    days = days_of(context.partition_time_window)
    selected = context.selected_asset_check_keys

    def wanted(key: tuple[str, str], name: str) -> bool:
        return dg.AssetCheckKey(dg.AssetKey(list(key)), name) in selected

    outcomes = []  # (asset key, check name, {day: result})
    with warehouse.open() as wh:
        for key, (day_col, mart) in KPI_SUITES.items():
            if wanted(key, "kpi_suite"):
                outcomes.append((key, "kpi_suite", kpi_suite_by_day(
                    wh, mart_relation(mart), day_col, mart, days)))
        if wanted(RECONCILED, "reconciled_with_source"):
            result = reconcile_transitions(sources.sources().pg_dsn, wh)
            outcomes.append((RECONCILED, "reconciled_with_source", dict.fromkeys(days, result)))
        if wanted(PAN_SCANNED, "no_pan_in_warehouse"):
            marts = [mart_relation(name) for name in (
                "audit_token_transitions", "dim_token", "fct_token_state_transitions")]
            result = scan_for_pans(wh, marts)
            outcomes.append((PAN_SCANNED, "no_pan_in_warehouse", dict.fromkeys(days, result)))
        # the verdict per day, in the warehouse, for the readers that are not Dagster (the
        # reports API, the Tableau extracts): quality/verdicts.py
        by_day: dict[date, list[tuple[str, bool]]] = {day: [] for day in days}
        for key_path, name, results in outcomes:
            for day, result in results.items():
                by_day[day].append((f"{'/'.join(key_path)}:{name}", result.passed))
        verdicts.record(wh, by_day, context.run.run_id)
        # write-audit-publish: the analysts' schema gets the days just passed and loses the
        # days not passed (reporting/published.py)
        schema = published_schema()
        done = publish(wh, mart_relation, [day for day, checks in by_day.items() if checks],
                       schema=schema)
        context.log.info(f"{schema}: {len(done.days)} day(s) published, "
                         f"{len(done.rewritten)} rewritten, {len(done.removed)} removed")
    withheld: dict[str, list[str]] = {}
    for key_path, name, by_day in outcomes:
        key = dg.AssetCheckKey(dg.AssetKey(list(key_path)), name)
        for day, result in by_day.items():
            if not result.passed:
                withheld.setdefault(day.isoformat(), []).append(
                    f"{key.asset_key.to_user_string()}:{name}")
        yield from by_partition(context, key, {
            day.isoformat(): day_result(day, result) for day, result in by_day.items()})
    for day, failed in sorted(withheld.items()):
        context.log.warning(f"publication of {day} withheld: {sorted(failed)}")
