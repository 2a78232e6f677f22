"""The pipeline reporting itself: a finished Dagster run as Datadog points and one event.

``RunReport`` is what a run-status sensor (orchestration/defs/run_reports/) reads of a finished
run: job, outcome, start and end, its partition (one day or a range), the steps and checks that
failed and, when the run evaluated the quality gate, each day's verdict. ``run_points`` turns it
into the metrics of ``catalog.PIPELINE_METRICS``, stamped with the run's end and tagged only
with bounded values (``env``, ``job``, ``outcome``); ``send`` publishes them and posts the run's
event (``events.run_finished``), which names the run, its partition and every day's verdict.
The monitors ``monitors/pipeline_*.json`` alert on them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reporting.datadog.series import KpiPoint, PublishResult, publish

OUTCOMES = ("success", "failure", "canceled")
RUN_COUNT = "tokenwatch.pipeline.run.count"
RUN_DURATION = "tokenwatch.pipeline.run.duration_s"
WITHHELD_DAYS = "tokenwatch.pipeline.gate.withheld_days"
_NOT_IN_TAG = re.compile(r"[^a-z0-9_.:/-]+")


def job_tag(job: str) -> str:
    """A job's name as a tag value (Datadog's tag rule: lowercase, a letter or digit first);
    Dagster's implicit ``__ASSET_JOB`` becomes ``asset_job``."""
    value = _NOT_IN_TAG.sub("_", job.lower()).lstrip("_.:/-")
    return value[:100] or "unnamed"


@dataclass(frozen=True)
class RunReport:
    run_id: str
    job: str
    outcome: str  # success | failure | canceled
    ended: float  # epoch seconds
    started: float | None = None  # None: the run never started (canceled while queued)
    partition: str | None = None  # "2026-01-15", "2026-01-15..2026-01-21", or unpartitioned
    failed_steps: tuple[str, ...] = ()
    failed_checks: tuple[str, ...] = ()  # "asset:check", with " [day]" when partitioned
    #: day -> the gate checks that failed on it (empty: the day passed); {} when the run did not
    #: evaluate the gate
    gate: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {OUTCOMES}")

    @property
    def duration_s(self) -> float | None:
        return None if self.started is None else max(0.0, self.ended - self.started)

    @property
    def withheld_days(self) -> list[str]:
        return sorted(day for day, failed in self.gate.items() if failed)

    @property
    def gate_status(self) -> str | None:
        """passed | withheld, or None when the run did not evaluate the gate."""
        if not self.gate:
            return None
        return "withheld" if self.withheld_days else "passed"


def run_points(report: RunReport, env: str) -> list[KpiPoint]:
    """The run's count (1, a count), its duration when it started, and the days the gate
    withheld when it evaluated the gate (a run that did not sends no false zero)."""
    at = int(report.ended)
    tags = (f"env:{env}", f"job:{job_tag(report.job)}", f"outcome:{report.outcome}")
    points = [KpiPoint(RUN_COUNT, 1, at, tags, type="count")]
    if report.duration_s is not None:
        points.append(KpiPoint(RUN_DURATION, round(report.duration_s, 3), at, tags))
    if report.gate:
        points.append(KpiPoint(WITHHELD_DAYS, len(report.withheld_days), at, tags[:2]))
    return points


def send(report: RunReport, client_options: Mapping[str, Any],
         env: str) -> tuple[PublishResult, Any]:
    """Publish the run's points, then post its event; return both answers."""
    from reporting.datadog.events import run_finished

    result = publish(run_points(report, env), client_options)
    return result, run_finished(report, client_options, env=env)
