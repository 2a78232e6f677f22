"""Retention as Dagster asset checks (PCI DSS 10.5.1), on the audit mart of record,
``compliance/audit_token_transitions`` (each check covers ``audit_daily_summary`` too):

* ``audit_retention``: every day of the 12 months ending with the partition's day that the
  source (the transition log in PostgreSQL, below the extraction watermark) holds is in the
  audit marts; 12 months, or the data's whole span when shorter;
* ``audit_hot_tier``: the same for the last 90 days, answered now by an ordinary query on the
  warehouse's live tables (the query's time is in the metadata).

The rules are in ``quality/retention.py``. Both checks have severity ERROR and do not block.
They run in the compliance job only (daily; not in the hourly marts job, see schedules.py).
After recording its verdicts, each sends ``tokenwatch.audit.marts.missing_days`` (tier:retention
or tier:hot: 0 when all is held; the stale-audit-mart monitor also alerts when it stops coming)
and, when it failed, an ``audit:<check>`` error event saying which days are missing.
"""


import dagster as dg

from orchestration.check_results import by_partition
from orchestration.defs.gate.checks import days_of
from orchestration.partitions import DAILY
from orchestration.resources import (
    WAREHOUSE_POOL,
    DatadogResource,
    SourcesResource,
    WarehouseResource,
)


def mart_key(model: str) -> dg.AssetKey:
    """The asset key of a dbt model (the translator's, from the manifest)."""
    from orchestration.defs.dbt.assets import TRANSLATOR, manifest

    return TRANSLATOR.get_asset_key(manifest()["nodes"][f"model.tokenwatch.{model}"])


MART = mart_key("audit_token_transitions")
#: check name -> (the tier its metric is tagged with, the control its event names)
CHECKS = {"audit_retention": ("retention", "retention"),
          "audit_hot_tier": ("hot", "hot_tier")}
RUNBOOK = {
    "retention": "rebuild the missing days of the audit marts (`dagster asset materialize` of "
                 "the compliance job for those partitions, or a dbt full refresh of "
                 "audit_token_transitions) and find what removed them: tokenwatch never deletes "
                 "warehouse rows.",
    "hot_tier": "the last 90 days must answer a plain query: run the compliance job for the "
                "missing days; if the warehouse answers slowly or the days were moved out of "
                "the live tables, bring them back before the next daily review.",
}
SPECS = [dg.AssetCheckSpec(
    name, asset=MART, blocking=False, partitions_def=DAILY,
    description=("The audit marts hold every day of the 12-month retention window (or the "
                 "data's whole span) that PostgreSQL's transition log holds."
                 if name == "audit_retention" else
                 "The last 90 days the source holds are queryable now in the audit marts "
                 "(the hot tier)."))
    for name in CHECKS]


@dg.multi_asset_check(specs=SPECS, name="audit_retention_checks", can_subset=True,
                      pool=WAREHOUSE_POOL,
                      description="Retention (12 months) and hot tier (90 days) of the audit "
                                  "marts against the source, PCI DSS 10.5.1.")
def audit_retention_checks(context: dg.AssetCheckExecutionContext,
                           warehouse: WarehouseResource, sources: SourcesResource,
                           datadog: DatadogResource):
    from orchestration.defs.dbt.assets import mart_relation
    from quality.retention import hot_tier_check, retention_check

    run = {"audit_retention": retention_check, "audit_hot_tier": hot_tier_check}
    days = days_of(context.partition_time_window)
    wanted = [name for name in CHECKS
              if dg.AssetCheckKey(MART, name) in context.selected_asset_check_keys]
    pg_dsn = sources.sources().pg_dsn
    outcomes: dict[str, dict] = {}
    with warehouse.open() as wh:
        for name in wanted:
            outcomes[name] = {day: run[name](wh, mart_relation, pg_dsn, day) for day in days}
    for name, by_day in outcomes.items():
        yield from by_partition(context, dg.AssetCheckKey(MART, name), {
            day.isoformat(): dg.AssetCheckResult(
                passed=result.passed, severity=dg.AssetCheckSeverity.ERROR,
                description=result.summary[:2000],
                metadata={"partition": day.isoformat(), **result.metadata})
            for day, result in by_day.items()})
    report(outcomes, datadog, context.log)


def report(outcomes: dict[str, dict], datadog: DatadogResource, log) -> None:
    """The checks' metric (the latest day's) and an event per failed day, to Datadog."""
    from reporting.datadog.controls import missing_days_point, send
    from reporting.datadog.events import audit_failed

    options, env = datadog.options(), datadog.env_tag()
    points = []
    for name, by_day in outcomes.items():
        tier, control = CHECKS[name]
        latest = by_day[max(by_day)]
        points.append(missing_days_point(tier, latest.metadata["missing_days"], env))
        for day, result in sorted(by_day.items()):
            if not result.passed:
                log.warning(result.summary)
                audit_failed(day.isoformat(), control, result.summary, options, env=env,
                             runbook=RUNBOOK[control])
    if points:
        send(points, options)


RETENTION_CHECKS = [audit_retention_checks]
