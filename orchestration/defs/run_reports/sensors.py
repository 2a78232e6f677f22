"""Every finished run reported to Datadog, so that its monitors cover the batch path too.

Three run-status sensors, one per final status (success, failure, canceled), send for each run
of this code location that reaches it: ``tokenwatch.pipeline.run.count`` and
``tokenwatch.pipeline.run.duration_s`` (tagged env, job, outcome), the days the quality gate
withheld (``tokenwatch.pipeline.gate.withheld_days``, when the run evaluated the gate) and one
event naming the run, its partition, its failed steps and checks and every day's gate verdict
(``reporting.datadog.pipeline``). The gate's verdict per day is read from the run's own check
evaluations in the instance (the same records as ``quality.gate_verdicts``).

Once per run: each sensor's cursor (Dagster's, kept by the instance) is the last run-status
event it handled, so a run is reported by the one sensor of its status, once. A report never
fails anything: the run has already finished; an error (Datadog down) is logged as a warning
on the tick and the run is not retried. With Datadog not configured (no local stack, no
``DD_API_KEY`` in prod) the sensors say so once and send nothing. The daemon evaluates them;
in-process runs (tests, the demo) call ``evaluate``.
"""

from __future__ import annotations

import logging
import time

import dagster as dg

from orchestration.automation import sensor_status
from orchestration.defs.gate.checks import SPECS
from orchestration.resources import DatadogResource
from reporting.datadog.pipeline import RunReport, send
from reporting.datadog.rules import redact
from tokenwatch.stack_file import StackError

GATE_CHECKS = frozenset(dg.AssetCheckKey(spec.asset_key, spec.name) for spec in SPECS)
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
OUTCOMES = {dg.DagsterRunStatus.SUCCESS: "success", dg.DagsterRunStatus.FAILURE: "failure",
            dg.DagsterRunStatus.CANCELED: "canceled"}
_SAID_UNCONFIGURED: set[str] = set()  # "Datadog is not configured" is said once per process


def partition_of(tags: dict[str, str]) -> str | None:
    """A run's partition as events name it: one key, a range ``a..b``, or None."""
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    start, end = (tags.get(t) for t in RANGE_TAGS)
    if start and end:
        return start if start == end else f"{start}..{end}"
    return None


def run_report(instance: dg.DagsterInstance, run: dg.DagsterRun, outcome: str) -> RunReport:
    """What the instance knows of a finished run: times, partition, failures, gate verdicts."""
    record = instance.get_run_record_by_id(run.run_id)
    ended = (record.end_time if record and record.end_time else None) or time.time()
    started = record.start_time if record else None
    failed_steps: set[str] = set()
    failed_checks: set[str] = set()
    gate: dict[str, list[str]] = {}
    entries = instance.all_logs(run.run_id, of_type={
        dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.ASSET_CHECK_EVALUATION})
    for entry in entries:
        event = entry.get_dagster_event()
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            failed_steps.add(event.step_key or "?")
            continue
        evaluation = event.event_specific_data
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        day = evaluation.metadata.get("partition")
        day = day.value if day is not None else None
        if not evaluation.passed:
            failed_checks.add(f"{name} [{day}]" if day else name)
        key = dg.AssetCheckKey(evaluation.asset_key, evaluation.check_name)
        if key in GATE_CHECKS and day:
            gate.setdefault(day, [])
            if not evaluation.passed:
                gate[day].append(name)
    return RunReport(run_id=run.run_id, job=run.job_name, outcome=outcome, ended=ended,
                     started=started, partition=partition_of(dict(run.tags)),
                     failed_steps=tuple(sorted(failed_steps)),
                     failed_checks=tuple(sorted(failed_checks)),
                     gate={day: tuple(sorted(set(f))) for day, f in sorted(gate.items())})


def _options(datadog: DatadogResource, log: logging.Logger) -> dict | None:
    """Datadog's client options, or None (said once) when Datadog is not configured."""
    try:
        return datadog.options()
    except (StackError, ValueError) as exc:
        reason = redact(str(exc))[:300]
        if reason not in _SAID_UNCONFIGURED:
            _SAID_UNCONFIGURED.add(reason)
            log.warning(f"Datadog is not configured ({reason}): finished runs are not "
                        "reported")
        return None


def report_run(context: dg.RunStatusSensorContext, datadog: DatadogResource,
               outcome: str) -> None:
    """Send the finished run's points and event; log, never raise, when that fails."""
    run = context.dagster_run
    options = _options(datadog, context.log)
    if options is None:
        return
    try:
        report = run_report(context.instance, run, outcome)
        result, _ = send(report, options, datadog.env_tag())
    except Exception as exc:  # noqa: BLE001 - a report never fails a run nor the sensor
        context.log.warning(f"run {run.run_id} ({run.job_name}, {outcome}) was not reported "
                            f"to Datadog: {type(exc).__name__}: {redact(str(exc))[:300]}")
        return
    context.log.info(f"reported run {run.run_id} ({run.job_name}, {outcome}): "
                     f"{result.points} points and its event")


def _sensor(status: dg.DagsterRunStatus) -> dg.RunStatusSensorDefinition:
    outcome = OUTCOMES[status]

    @dg.run_status_sensor(
        run_status=status, name=f"run_report_{outcome}", default_status=sensor_status(),
        minimum_interval_seconds=30,
        description=f"Each run that ends in {status.value}: its count, duration and gate "
                    "verdicts as Datadog metrics, and one Datadog event, once.")
    def _report(context: dg.RunStatusSensorContext, datadog: DatadogResource):
        report_run(context, datadog, outcome)

    return _report


run_report_success = _sensor(dg.DagsterRunStatus.SUCCESS)
run_report_failure = _sensor(dg.DagsterRunStatus.FAILURE)
run_report_canceled = _sensor(dg.DagsterRunStatus.CANCELED)
SENSORS = (run_report_success, run_report_failure, run_report_canceled)


def evaluate(instance: dg.DagsterInstance, datadog: DatadogResource,
             cursors: dict[str, str | None]) -> dict[str, str | None]:
    """One tick of each sensor on ``instance``, as the daemon runs it, from ``cursors``
    (sensor name -> cursor; none yet: the tick starts from the instance's latest run-status
    event, reporting nothing); returns the cursors after the tick."""
    after = dict(cursors)
    for sensor in SENSORS:
        context = dg.build_sensor_context(instance=instance, cursor=cursors.get(sensor.name),
                                          resources={"datadog": datadog})
        after[sensor.name] = sensor.evaluate_tick(context).cursor
    return after
