"""The raw layer as Dagster assets: thin wrappers around ``ingestion`` (plain, tested Python).

Each asset loads its source exactly once (watermarks and checkpoints live in the warehouse) and
reports what it did as metadata: rows loaded, duplicates skipped, lines quarantined.
"""


from dataclasses import asdict
from datetime import timedelta

import dagster as dg

from ingestion.sources.kinesis import load_wallet_events
from ingestion.sources.s3 import load_lake
from ingestion.sources.transitions import load_transitions
from orchestration.resources import WAREHOUSE_POOL, SourcesResource, WarehouseResource

GROUP = "raw"
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=1),
                                           warn_window=timedelta(minutes=30))


def _metadata(result) -> dict:
    return {k: dg.MetadataValue.int(v) if isinstance(v, int) else dg.MetadataValue.json(v)
            for k, v in asdict(result).items()}


@dg.asset(key=["raw", "token_state_transitions"], group_name=GROUP, kinds={"postgres"},
          freshness_policy=FRESHNESS, pool=WAREHOUSE_POOL,
          description="The state service's transition log, copied incrementally up to the "
                      "snapshot's xmin (late commits are read by a later run, never skipped).")
def raw_token_state_transitions(context: dg.AssetExecutionContext,
                                warehouse: WarehouseResource,
                                sources: SourcesResource) -> dg.MaterializeResult:
    with warehouse.open() as wh:
        result = load_transitions(sources.sources().pg_dsn, wh)
        total = wh.count("token_state_transitions")
    context.log.info(f"transitions: {result.rows_loaded} new, {result.duplicates} already there")
    return dg.MaterializeResult(metadata=_metadata(result) | {
        "dagster/row_count": dg.MetadataValue.int(total)})


@dg.asset(key=["raw", "wallet_events"], group_name=GROUP, kinds={"kinesis"},
          freshness_policy=FRESHNESS, pool=WAREHOUSE_POOL,
          description="Wallet events from Kinesis, every shard from its checkpoint; duplicate "
                      "deliveries kept once; malformed records quarantined.")
def raw_wallet_events(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                      sources: SourcesResource) -> dg.MaterializeResult:
    src = sources.sources()
    with warehouse.open() as wh:
        result = load_wallet_events(src.kinesis, src.stream, wh)
        total = wh.count("wallet_events")
    context.log.info(f"wallet events: {result.rows_loaded} new, {result.duplicates} duplicates, "
                     f"{result.quarantined} quarantined")
    return dg.MaterializeResult(metadata=_metadata(result) | {
        "dagster/row_count": dg.MetadataValue.int(total)})


@dg.multi_asset(
    specs=[dg.AssetSpec(["raw", "apigw_logs"], group_name=GROUP, kinds={"s3"},
                        freshness_policy=FRESHNESS,
                        description="API Gateway access logs from the S3 data lake."),
           dg.AssetSpec(["raw", "lambda_logs"], group_name=GROUP, kinds={"s3"},
                        freshness_policy=FRESHNESS,
                        description="Lambda invocation logs from the S3 data lake.")],
    name="raw_lake_logs", pool=WAREHOUSE_POOL)
def raw_lake_logs(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                  sources: SourcesResource):
    src = sources.sources()
    with warehouse.open() as wh:
        result = load_lake(src.s3, src.bucket, wh)
        totals = {t: wh.count(t) for t in ("apigw_logs", "lambda_logs")}
    context.log.info(f"lake: {result.objects_loaded} new objects, {result.rows_loaded} rows, "
                     f"{result.duplicate_objects} duplicate objects, {result.quarantined} "
                     "quarantined")
    shared = _metadata(result)
    for table, total in totals.items():
        yield dg.MaterializeResult(asset_key=["raw", table], metadata=shared | {
            "rows_loaded_this_table": dg.MetadataValue.int(result.per_source.get(table, 0)),
            "dagster/row_count": dg.MetadataValue.int(total)})


INGEST_ASSETS = [raw_token_state_transitions, raw_wallet_events, raw_lake_logs]

#: Tables every loader writes to (not assets of one loader): declared for lineage.
RAW_BOOKKEEPING = [
    dg.AssetSpec(["raw", "quarantine"], group_name=GROUP,
                 deps=[["raw", "wallet_events"], ["raw", "apigw_logs"], ["raw", "lambda_logs"]],
                 description="Every record that could not be loaded, with where and why."),
    dg.AssetSpec(["raw", "_ingest_state"], group_name=GROUP,
                 deps=[["raw", "token_state_transitions"], ["raw", "wallet_events"]],
                 description="Watermarks, checkpoints and the stream ledger."),
    dg.AssetSpec(["raw", "_s3_manifest"], group_name=GROUP,
                 deps=[["raw", "apigw_logs"], ["raw", "lambda_logs"]],
                 description="Every S3 object seen, loaded once per key and etag."),
]
