"""Datadog events about a partition's publication: withheld (error) or done (info); about
the compliance controls of a partition: an audit control failed (error) or a pack was built;
and about a finished Dagster run (``run_finished``: error on failure, warning when canceled,
success otherwise).

Publication events are tagged ``env``, ``partition`` and ``publication:withheld|done``; the "no
publication" monitor counts the ``publication:done`` events. Audit events are tagged ``env``,
``partition``, ``audit:<control>`` and ``status:passed|failed``. Texts are redacted of PAN-like
numbers and cut to Datadog's limits (title 100, text 4000 characters).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from reporting.datadog.catalog import EVENT_TAG_KEYS
from reporting.datadog.client import connected
from reporting.datadog.pipeline import RunReport, job_tag
from reporting.datadog.rules import redact, tags_problem
from reporting.datadog.series import PublishResult
from tokenwatch import config

PARTITION = re.compile(r"[0-9a-z][0-9a-z_.:-]{0,63}")
MAX_TEXT = 4000
MAX_TITLE = 100


def _tags(partition: str, env: str | None, publication: str | None = None,
          **more: str) -> list[str]:
    if not isinstance(partition, str) or not PARTITION.fullmatch(partition):
        raise ValueError(f"partition {partition!r} is not a partition key such as 2026-01-15")
    tags = [f"env:{env or config.env_name()}", f"partition:{partition}"]
    tags += [f"publication:{publication}"] if publication else []
    tags += [f"{key}:{value}" for key, value in more.items()]
    problem = tags_problem(tags, EVENT_TAG_KEYS)
    if problem:
        raise ValueError(f"event for partition {partition}: {problem}")
    return tags


def _text(lines: list[str]) -> str:
    """Markdown, cut to Datadog's limit."""
    body = "\n".join(lines)
    if len(body) > MAX_TEXT - 40:
        body = body[:MAX_TEXT - 60] + "\n... (cut: see the asset checks in Dagster)"
    return "%%%\n" + body + "\n%%%"


def _post(title: str, lines: list[str], alert_type: str, tags: list[str],
          partition: str, client_options: Mapping[str, Any],
          aggregation: str = "publication") -> Any:
    with connected(client_options) as dd:
        return dd.Event.create(title=title[:MAX_TITLE], text=_text(lines), alert_type=alert_type,
                               tags=tags,
                               aggregation_key=f"tokenwatch-{aggregation}-{partition}",
                               attach_host_name=False)


def publication_withheld(partition: str,
                         failures: Mapping[str, str] | Iterable[tuple[str, str]],
                         client_options: Mapping[str, Any], env: str | None = None) -> Any:
    """Post an error event: the KPIs of ``partition`` were not published, and why.

    ``failures``: check name -> what it found. Returns Datadog's answer."""
    failed = dict(failures)
    if not failed:
        raise ValueError(f"publication of {partition} withheld without a failed check to name")
    tags = _tags(partition, env, "withheld")
    lines = [f"KPI publication for partition **{partition}** was withheld: "
             f"{len(failed)} check(s) failed.", ""]
    lines += [redact(f"- **{name}**: {' '.join(str(why).split())}")
              for name, why in sorted(failed.items())]
    return _post(f"tokenwatch: KPI publication withheld for {partition}", lines, "error", tags,
                 partition, client_options)


def publication_done(partition: str, result: PublishResult,
                     client_options: Mapping[str, Any], env: str | None = None) -> Any:
    """Post an info event: the KPIs of ``partition`` were published. Returns Datadog's answer."""
    tags = _tags(partition, env, "done")
    lines = [f"KPI publication for partition **{partition}**: {result.points} points of "
             f"{len(result.metrics)} metrics in {result.batches} request(s).", ""]
    lines += [f"- {name}" for name in result.metrics]
    return _post(f"tokenwatch: KPIs published for {partition}", lines, "info", tags, partition,
                 client_options)


def audit_failed(partition: str, control: str, why: str,
                 client_options: Mapping[str, Any], env: str | None = None,
                 runbook: str = "") -> Any:
    """Post an error event: the audit control ``control`` (pack, retention, hot_tier, review)
    failed for ``partition``, what it found and what to do. Returns Datadog's answer."""
    if not why:
        raise ValueError(f"audit control {control} failed for {partition} without a reason")
    tags = _tags(partition, env, audit=control, status="failed")
    lines = [f"Audit control **{control}** failed for partition **{partition}**.", "",
             redact(" ".join(str(why).split()))]
    lines += ["", f"Runbook: {runbook}"] if runbook else []
    return _post(f"tokenwatch: audit {control} failed for {partition}", lines, "error", tags,
                 partition, client_options, aggregation=f"audit-{control}")


def audit_pack_built(partition: str, period: str, controls: Mapping[str, str],
                     location: str, client_options: Mapping[str, Any],
                     env: str | None = None) -> Any:
    """Post the event of a built pack: info when every control passed, error otherwise (the
    pack is written either way: a failing control is evidence). Returns Datadog's answer."""
    failed = sorted(c for c, verdict in controls.items() if verdict == "fail")
    status = "failed" if failed else "passed"
    tags = _tags(partition, env, audit="pack", status=status)
    lines = [f"Audit pack ({period}) for **{partition}**: {len(controls)} control(s), "
             f"{len(failed)} failed. Written to `{location}`.", ""]
    lines += [f"- **{c}**: {controls[c]}" for c in sorted(controls)]
    title = (f"tokenwatch: audit pack for {partition}: {len(failed)} control(s) failed"
             if failed else f"tokenwatch: audit pack for {partition} built")
    return _post(title, [redact(line) for line in lines], "error" if failed else "info", tags,
                 partition, client_options, aggregation="audit-pack")


RUN_ALERT_TYPES = {"success": "success", "failure": "error", "canceled": "warning"}
OUTCOME_WORDS = {"success": "succeeded", "failure": "failed", "canceled": "was canceled"}


def run_finished(report: RunReport, client_options: Mapping[str, Any],
                 env: str | None = None) -> Any:
    """Post the event of a finished run: its id, job, partition, outcome and duration, the
    steps and checks that failed, and each day's gate verdict. Names only, never a check's
    findings or an error's message (publication_withheld says why a day was withheld).
    Aggregated per job and partition. Returns Datadog's answer."""
    job = job_tag(report.job)
    partition = report.partition if report.partition and PARTITION.fullmatch(
        report.partition) else None
    tags = [f"env:{env or config.env_name()}", f"job:{job}", f"outcome:{report.outcome}"]
    tags += [f"partition:{partition}"] if partition else []
    tags += [f"gate:{report.gate_status}"] if report.gate_status else []
    problem = tags_problem(tags, EVENT_TAG_KEYS)
    if problem:
        raise ValueError(f"event of run {report.run_id}: {problem}")
    duration = (f" after {report.duration_s:.1f} s" if report.duration_s is not None
                else " before it started")
    lines = [f"Dagster run `{report.run_id}` of job **{report.job}** "
             f"{OUTCOME_WORDS[report.outcome]}{duration}.", "",
             f"- partition: {report.partition or 'none (unpartitioned)'}"]
    if report.failed_steps:
        lines.append(f"- failed steps ({len(report.failed_steps)}): "
                     + ", ".join(f"`{s}`" for s in report.failed_steps))
    if report.failed_checks:
        lines.append(f"- failed checks ({len(report.failed_checks)}): "
                     + ", ".join(f"`{c}`" for c in report.failed_checks))
    if report.gate:
        withheld = report.withheld_days
        lines += ["", f"Quality gate: {len(report.gate)} day(s) checked, {len(withheld)} "
                      "withheld."]
        lines += [f"- {day}: " + (f"withheld ({', '.join(failed)})" if failed else "passed")
                  for day, failed in sorted(report.gate.items())]
    title = f"tokenwatch: run of {report.job} {OUTCOME_WORDS[report.outcome]}"
    title += f" ({report.partition})" if report.partition else ""
    with connected(client_options) as dd:
        return dd.Event.create(
            title=redact(title)[:MAX_TITLE], text=_text([redact(line) for line in lines]),
            alert_type=RUN_ALERT_TYPES[report.outcome], tags=tags,
            aggregation_key=f"tokenwatch-run-{job}-{partition or 'unpartitioned'}"[:100],
            attach_host_name=False)
