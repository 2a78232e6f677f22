"""The "publication withheld" Datadog event, sent by publication (not by the gate).

When a blocking check of the quality gate (orchestration/defs/gate/checks.py) fails, the run
fails and the publish asset never runs. This sensor watches failed runs; for each one it reads
the gate's failed evaluations from the instance and sends one event per withheld partition
(``reporting.datadog.events.publication_withheld``) naming every failed check and what it
found. A failed run without a failed gate check (dbt broke, a source was down) sends nothing.
The daemon evaluates it once per failed run; in-process runs (the demo, tests) evaluate it with
``evaluate_after``.
"""

from __future__ import annotations

import dagster as dg

from orchestration.automation import sensor_status
from orchestration.defs.gate.checks import SPECS
from orchestration.resources import DatadogResource

GATE_CHECKS = frozenset(dg.AssetCheckKey(spec.asset_key, spec.name) for spec in SPECS)


def withheld_partitions(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, str]]:
    """partition -> {"asset:check": what it found} for the gate checks that failed in a run."""
    withheld: dict[str, dict[str, str]] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.get_dagster_event().event_specific_data
        key = dg.AssetCheckKey(evaluation.asset_key, evaluation.check_name)
        if evaluation.passed or key not in GATE_CHECKS:
            continue
        partition = evaluation.metadata["partition"].value
        withheld.setdefault(partition, {})[
            f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"] = (
            evaluation.description or "failed")
    return withheld


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.FAILURE, name="publication_withheld",
    default_status=sensor_status(),
    description="After a run the quality gate stopped: one Datadog event per withheld "
                "partition, saying why.")
def publication_withheld(context: dg.RunStatusSensorContext, datadog: DatadogResource):
    withheld = withheld_partitions(context.instance, context.dagster_run.run_id)
    for partition, failures in sorted(withheld.items()):
        context.log.info(f"publication of {partition} withheld: {sorted(failures)}")
        datadog.withhold(partition, failures)


def evaluate_after(result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance,
                   datadog: DatadogResource) -> None:
    """Evaluate the sensor for a finished in-process run, as the daemon would."""
    event = result.get_run_failure_event() if not result.success else None
    if event is None:
        return
    context = dg.build_run_status_sensor_context(
        sensor_name="publication_withheld", dagster_event=event, dagster_instance=instance,
        dagster_run=result.dagster_run, resources={"datadog": datadog})
    publication_withheld(context)
