"""The transition log's tamper evidence as Dagster assets: a checkpoint per compliance run
(S3 under Object Lock, and ``raw.chain_checkpoints`` in the warehouse) and a check that
verifies the whole log against its seals and every checkpoint (``tokenwatch audit verify``, the
same code). Any finding fails the check (severity ERROR) and names the token and version. The
check does not block: the audit marts downstream are how a reviewer sees the same tampering
from the warehouse's side, so they must still build when it fails."""

import dagster as dg

from ingestion.sources.checkpoints import loader
from orchestration.check_results import by_partition
from orchestration.partitions import DAILY
from orchestration.resources import WAREHOUSE_POOL, SourcesResource, WarehouseResource
from state_service.audit import verify_log
from state_service.checkpoints import audit_bucket, ensure_bucket, take_checkpoint
from tokenwatch import config

MAX_FINDINGS = 50


def _store(sources: SourcesResource):
    s3 = sources.sources().s3
    bucket = audit_bucket()
    if config.env_name() == "local":
        ensure_bucket(s3, bucket)  # in prod the bucket is provisioned, with Object Lock
    return s3, bucket


@dg.asset(key=["raw", "chain_checkpoints"], group_name="audit", kinds={"s3", "postgres"},
          partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run(),
          deps=[["raw", "token_state_transitions"]], pool=WAREHOUSE_POOL,
          description="A checkpoint of every transition row committed since the last one: "
                      "locked in S3 (Object Lock, COMPLIANCE mode) and copied to the warehouse "
                      "for the audit marts.")
def chain_checkpoints(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                      sources: SourcesResource) -> dg.MaterializeResult:
    s3, bucket = _store(sources)
    with warehouse.open() as wh:
        cp = take_checkpoint(sources.sources().pg_dsn, s3, bucket, config.chain_keys(),
                             loader(wh))
    context.log.info(f"checkpoint {cp.seq}: {cp.rows} rows, s3://{bucket}/{cp.key}")
    return dg.MaterializeResult(metadata={
        "seq": dg.MetadataValue.int(cp.seq), "rows": dg.MetadataValue.int(cp.rows),
        "digest": cp.digest, "s3_object": f"s3://{bucket}/{cp.key}"})


@dg.asset_check(asset=chain_checkpoints, name="chain_verified", blocking=False,
                partitions_def=DAILY,
                description="The transition log matches its seals and every checkpoint: no "
                            "edited, deleted, inserted or reordered row, no erased token.")
def chain_verified(context: dg.AssetCheckExecutionContext, sources: SourcesResource):
    # the whole log is verified once; its verdict is every checkpointed day's of the run (one
    # evaluation per day, so a run over a range of days leaves none of them Skipped)
    s3, bucket = _store(sources)
    result = verify_log(sources.sources().pg_dsn, config.chain_keys()[1], s3, bucket)
    verdict = dg.AssetCheckResult(
        passed=result.ok,
        severity=dg.AssetCheckSeverity.ERROR,
        description=("intact" if result.ok else
                     f"{len(result.findings)} finding(s): " + ", ".join(
                         f"{k} {n}" for k, n in sorted(result.by_kind().items()))),
        metadata={"rows": dg.MetadataValue.int(result.rows),
                  "tokens": dg.MetadataValue.int(result.tokens),
                  "checkpoints": dg.MetadataValue.int(result.checkpoints),
                  "findings_by_kind": dg.MetadataValue.json(result.by_kind()),
                  "findings": dg.MetadataValue.json(
                      [str(f) for f in result.findings[:MAX_FINDINGS]])})
    key = dg.AssetCheckKey(chain_checkpoints.key, "chain_verified")
    yield from by_partition(context, key, dict.fromkeys(context.partition_keys, verdict))


#: The checkpoint asset writes a second table, one row per checkpoint (the audit marts read
#: both: dbt's sources audit.chain_checkpoints and audit.chain_checkpoint_log); declared for
#: lineage, like ingestion's bookkeeping tables.
CHECKPOINT_LOG = dg.AssetSpec(
    ["raw", "chain_checkpoint_log"], group_name="audit", deps=[["raw", "chain_checkpoints"]],
    description="One row per checkpoint: its sequence, digest chain and seal, and where its "
                "locked S3 copy is (written with raw.chain_checkpoints).")

AUDIT_ASSETS = [chain_checkpoints]
AUDIT_RAW_TABLES = [CHECKPOINT_LOG]
AUDIT_CHECKS = [chain_verified]
