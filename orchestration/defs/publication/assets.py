"""Publication: the KPIs of each day partition to Datadog, and dashboards/monitors as code.

The publish asset depends directly on every gated asset (orchestration/defs/gate/checks.py),
so a failing blocking check stops it: nothing of that partition reaches Datadog, and the
sensor in sensors.py sends the one "publication withheld" event instead.
Re-publishing a partition sends the same points (Datadog keeps the last value per series and
timestamp).
"""

import dagster as dg

from orchestration.defs.gate.checks import GATED_ASSETS, days_of, partition_label
from orchestration.partitions import DAILY
from orchestration.resources import WAREHOUSE_POOL, DatadogResource, WarehouseResource
from reporting.kpis import KPI_MARTS, kpi_points


def kpi_deps() -> list[dg.AssetKey]:
    """What anything that leaves after the gate waits for: the KPI marts and every gated asset
    (their blocking checks stop it). The Datadog series and the Tableau extracts use it."""
    from orchestration.defs.dbt.assets import TRANSLATOR, manifest

    nodes = manifest()["nodes"]
    keys = [TRANSLATOR.get_asset_key(nodes[f"model.tokenwatch.{m}"]) for m in sorted(KPI_MARTS)]
    return sorted(set(keys) | set(GATED_ASSETS), key=lambda k: k.to_user_string())


@dg.asset(key=["datadog", "kpis"], group_name="publication", partitions_def=DAILY,
          backfill_policy=dg.BackfillPolicy.single_run(), deps=kpi_deps(),
          kinds={"datadog"}, pool=WAREHOUSE_POOL,
          description="The day's KPIs as Datadog series (tokenwatch.<area>.<kpi>), stamped "
                      "with the partition's start and tagged env/wallet/network/decision.")
def datadog_kpis(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                 datadog: DatadogResource) -> dg.MaterializeResult:
    from orchestration.defs.dbt.assets import mart_relation
    from reporting.datadog.events import publication_done
    from reporting.datadog.series import publish

    days = days_of(context.partition_time_window)
    options = datadog.options()
    with warehouse.open() as wh:
        points = [p for day in days
                  for p in kpi_points(wh.query, mart_relation, day, datadog.env_tag())]
    result = publish(points, options)
    partition = partition_label(days)
    publication_done(partition, result, options, env=datadog.env_tag())
    context.log.info(f"published {result.points} KPI points for {partition}")
    return dg.MaterializeResult(metadata={
        "points": result.points, "batches": result.batches,
        "metrics": dg.MetadataValue.json(sorted(set(result.metrics))),
        "sent": dg.MetadataValue.json([{"metric": p.metric, "value": p.value,
                                        "timestamp": p.timestamp, "tags": list(p.tags)}
                                       for p in points[:200]]),
        "intake_responses": dg.MetadataValue.json([str(r) for r in result.responses])})


@dg.asset(key=["datadog", "dashboards_and_monitors"], group_name="publication",
          kinds={"datadog"},
          description="Dashboards and monitors from reporting/datadog/, pushed: "
                      "created when missing, updated when changed.")
def datadog_as_code(context: dg.AssetExecutionContext,
                    datadog: DatadogResource) -> dg.MaterializeResult:
    from reporting.datadog.as_code import push

    pushed = push(datadog.options())
    for item in pushed:
        context.log.info(f"{item.kind} {item.title!r}: {item.action}")
    return dg.MaterializeResult(metadata={"pushed": dg.MetadataValue.json(
        [item._asdict() for item in pushed])})


PUBLISH_ASSETS = [datadog_kpis, datadog_as_code]
