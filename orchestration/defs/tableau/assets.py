"""Tableau: the extracts of the dbt exposures, built after the quality gate, and their
publication.

``tableau/extracts`` depends on the same gated assets as ``datadog/kpis``, so a failing
blocking check of a partition stops it as it stops the KPIs. Each run rewrites every extract
whole from the warehouse with the days the gate has passed so far (reporting/tableau/), under
``$TOKENWATCH_HOME/tableau``. It is in the ``publication`` group, so ``marts_and_kpis`` runs it.

``tableau/published`` is defined only when ``TOKENWATCH_TABLEAU_SERVER_URL`` is set when the
definitions load: without a server there is nothing to publish to, and an asset that always
skipped would show a green materialisation of nothing.
"""

import dagster as dg

from orchestration.defs.gate.checks import days_of, partition_label
from orchestration.defs.publication.assets import kpi_deps
from orchestration.partitions import DAILY
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource
from reporting.tableau import publish as tableau_publish

EXTRACTS = dg.AssetKey(["tableau", "extracts"])


@dg.asset(key=EXTRACTS, group_name="publication", partitions_def=DAILY,
          backfill_policy=dg.BackfillPolicy.single_run(), deps=kpi_deps(),
          kinds={"tableau"}, pool=WAREHOUSE_POOL,
          description="One .hyper extract per Tableau exposure of the dbt project, holding "
                      "only the days the quality gate passed.")
def tableau_extracts(context: dg.AssetExecutionContext,
                     warehouse: WarehouseResource) -> dg.MaterializeResult:
    from orchestration.defs.dbt.assets import mart_relation
    from reporting.tableau.extract import default_dir, write_extracts

    with warehouse.open() as wh:
        written = write_extracts(wh, mart_relation, default_dir())
    partition = partition_label(days_of(context.partition_time_window))
    for extract in written:
        context.log.info(f"{extract.path.name}: {extract.rows} rows, "
                         f"{len(extract.days_held)} days held ({partition})")
    held = sorted({d for e in written for d in e.days_held})
    left_out = sorted({d for e in written for d in e.days_left_out})
    return dg.MaterializeResult(metadata={
        "files": dg.MetadataValue.json([
            {"file": str(e.path), "rows": e.rows,
             "tables": {t.model: {"rows": t.rows, "kept": t.filter} for t in e.tables}}
            for e in written]),
        "rows": sum(e.rows for e in written),
        "days_held": dg.MetadataValue.json([d.isoformat() for d in held]),
        "days_left_out": dg.MetadataValue.json([d.isoformat() for d in left_out])})


def _published_asset() -> dg.AssetsDefinition:
    @dg.asset(key=["tableau", "published"], group_name="publication", partitions_def=DAILY,
              backfill_policy=dg.BackfillPolicy.single_run(), deps=[EXTRACTS],
              kinds={"tableau"},
              description="The extracts published to Tableau Server or Cloud "
                          "(TOKENWATCH_TABLEAU_*), each a data source overwritten in place.")
    def tableau_published(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        from reporting.tableau.exposures import extracts
        from reporting.tableau.extract import default_dir

        to = tableau_publish.target()
        published = tableau_publish.publish([default_dir() / e.file for e in extracts()], to)
        for item in published:
            context.log.info(f"published {item.name} ({item.datasource_id}) to {to.project!r}")
        return dg.MaterializeResult(metadata={
            "server": to.server_url, "project": to.project,
            "datasources": dg.MetadataValue.json(
                [{"name": p.name, "id": p.datasource_id, "bytes": p.bytes} for p in published])})

    return tableau_published


#: (load_from_defs_folder takes every asset of this module: defined only when configured)
if tableau_publish.configured():
    tableau_published = _published_asset()
