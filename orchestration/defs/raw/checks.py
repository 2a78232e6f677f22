"""Asset checks on the raw layer: every record read from a source is accounted for, and the
transition log reconciles with PostgreSQL up to the extraction watermark."""


import dagster as dg

from ingestion.accounting import (
    Accounting,
    lake_accounting,
    stream_accounting,
    transitions_accounting,
)
from orchestration.resources import WAREHOUSE_POOL, SourcesResource, WarehouseResource


def _result(acc: Accounting, asset_key=None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=acc.passed, asset_key=asset_key, description=acc.summary,
                               metadata={k: dg.MetadataValue.json(v) if isinstance(v, dict | list)
                                         else v for k, v in acc.observed.items()})


@dg.asset_check(asset=dg.AssetKey(["raw", "token_state_transitions"]), blocking=True,
                pool=WAREHOUSE_POOL,
                description="Every transition read from PostgreSQL below the extraction "
                            "watermark is a row or a quarantined line (counts and transition_id "
                            "sums of both sides).")
def transitions_accounted(warehouse: WarehouseResource,
                          sources: SourcesResource) -> dg.AssetCheckResult:
    with warehouse.open() as wh:
        return _result(transitions_accounting(wh, sources.sources().pg_dsn))


@dg.asset_check(asset=dg.AssetKey(["raw", "wallet_events"]), blocking=True, pool=WAREHOUSE_POOL,
                description="Every record read from the stream is a row, a skipped duplicate "
                            "or a quarantined line (the stream's ledger against the tables).")
def wallet_events_accounted(warehouse: WarehouseResource,
                            sources: SourcesResource) -> dg.AssetCheckResult:
    with warehouse.open() as wh:
        return _result(stream_accounting(wh, sources.sources().stream))


@dg.multi_asset_check(
    specs=[dg.AssetCheckSpec("lake_accounted", asset=dg.AssetKey(["raw", "apigw_logs"]),
                             blocking=True,
                             description="Every object in the lake is in the manifest, and "
                                         "the manifest's rows equal the tables' and the "
                                         "quarantine's."),
           dg.AssetCheckSpec("lake_accounted", asset=dg.AssetKey(["raw", "lambda_logs"]),
                             blocking=True)],
    pool=WAREHOUSE_POOL)
def lake_accounted(warehouse: WarehouseResource, sources: SourcesResource):
    src = sources.sources()
    with warehouse.open() as wh:
        acc = lake_accounting(wh, src.s3, src.bucket)
    for table in ("apigw_logs", "lambda_logs"):
        yield _result(acc, dg.AssetKey(["raw", table]))


RAW_CHECKS = [transitions_accounted, wallet_events_accounted, lake_accounted]
