"""What a Dagster instance recorded of a run's asset checks, read the way the UI reads it: the
planned evaluations (one per check and partition of the run), the evaluation events, the
stored execution records (a record still ``PLANNED`` once its run has ended is the UI's
"Skipped") and the per-partition status of a partitioned check."""

from __future__ import annotations

from collections import defaultdict

import dagster as dg

Planned = tuple[dg.AssetCheckKey, str | None]  # a check and a partition (None: unpartitioned)


def planned(instance: dg.DagsterInstance, run_id: str) -> set[Planned]:
    """Every (check, partition) the run said it would evaluate."""
    pairs: set[Planned] = set()
    for entry in instance.all_logs(run_id,
                                   of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED):
        data = entry.get_dagster_event().event_specific_data
        subset = data.partitions_subset
        for partition in (subset.get_partition_keys() if subset is not None else [None]):
            pairs.add((data.asset_check_key, partition))
    return pairs


def evaluations(instance: dg.DagsterInstance, run_id: str) -> dict[Planned, list]:
    """(check, partition) -> the run's evaluation events of it (AssetCheckEvaluation)."""
    found: dict[Planned, list] = defaultdict(list)
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.get_dagster_event().event_specific_data
        found[(evaluation.asset_check_key, evaluation.partition)].append(evaluation)
    return dict(found)


def stored(instance: dg.DagsterInstance, run_id: str,
           keys: set[dg.AssetCheckKey]) -> dict[Planned, list[str]]:
    """(check, partition) -> the statuses of the run's stored execution records."""
    found: dict[Planned, list[str]] = defaultdict(list)
    for key in keys:
        for record in instance.event_log_storage.get_asset_check_execution_history(
                key, limit=10_000):
            if record.run_id == run_id:
                found[(key, record.partition)].append(record.status.value)
    return dict(found)


def skipped(instance: dg.DagsterInstance, run_id: str) -> list[Planned]:
    """The (check, partition) pairs of a finished run that were planned and never evaluated:
    their record stays PLANNED, which the UI shows as Skipped."""
    keys = {key for key, _ in planned(instance, run_id)}
    return sorted(((key, partition) for (key, partition), statuses
                   in stored(instance, run_id, keys).items() if "PLANNED" in statuses),
                  key=lambda p: (p[0].to_user_string(), p[1] or ""))


def latest(instance: dg.DagsterInstance, key: dg.AssetCheckKey,
           partition: str | None = None) -> tuple[str, str | None, str]:
    """(run, partition, status) of the check's latest execution record, of one partition when
    given: what the check's page shows as its current result."""
    from dagster._core.event_api import PartitionKeyFilter

    record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [key], partition_filter=PartitionKeyFilter(key=partition) if partition else None)[key]
    return record.run_id, record.partition, record.status.value


def partition_statuses(instance: dg.DagsterInstance, key: dg.AssetCheckKey,
                       partitions_def: dg.PartitionsDefinition) -> dict[str, set[str]]:
    """status -> partitions, for a partitioned check: what the UI's partition bar shows
    (the asset check state the webserver builds from the execution records)."""
    (state,) = instance.event_log_storage.get_asset_check_state(
        [(key, partitions_def)]).values()
    return {status.value: set(subset.subset_value.get_partition_keys())
            for status, subset in state.subsets.items() if not subset.is_empty}
