"""Asset check results per partition, also in a run over a range of partitions.

Dagster 1.13's ``AssetCheckResult`` has no partition: a partitioned check gets its step's
partition when the run is for one partition, and ``None`` in a run over a range (a backfill
with ``BackfillPolicy.single_run``). In a range run the instance has planned one evaluation
per partition of the range, so a plain ``AssetCheckResult`` leaves every one of them planned
(the UI's "Skipped") and adds one un-partitioned result beside them.

``by_partition`` does for each partition what Dagster does for one: the check's output once
(what a blocking check's downstream assets wait for), then one ``AssetCheckEvaluation`` per
partition with ``partition`` set, ``blocking`` from the spec and the partition's latest
materialization as its target. The instance records each one on its planned row, so every
day has its own verdict and metadata, and the UI's sidebar, partition bar and detail agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import dagster as dg


def by_partition(context: dg.AssetCheckExecutionContext, key: dg.AssetCheckKey,
                 results: Mapping[str, dg.AssetCheckResult]
                 ) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    """Yield ``key``'s output, then ``results`` (partition key -> result) as evaluations."""
    assets_def = context.op_execution_context.assets_def
    spec = assets_def.get_spec_for_check_key(key)
    if spec.partitions_def is None:
        raise ValueError(f"{key.to_user_string()} is not partitioned: yield its "
                         "AssetCheckResult instead")
    yield dg.Output(None, output_name=assets_def.get_output_name_for_asset_check_key(key))
    for partition, result in results.items():
        yield dg.AssetCheckEvaluation(
            asset_key=key.asset_key, check_name=key.name, passed=result.passed,
            metadata=result.metadata, description=result.description,
            severity=result.severity, blocking=spec.blocking, partition=partition,
            target_materialization_data=_target(context.instance, key.asset_key, partition))


def _target(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str):
    """The partition's latest materialization of the checked asset, as Dagster's own
    ``AssetCheckResult`` records it for a partitioned step."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    records = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=asset_key, asset_partitions=[partition]), limit=1).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        run_id=records[0].run_id, storage_id=records[0].storage_id,
        timestamp=records[0].timestamp)
