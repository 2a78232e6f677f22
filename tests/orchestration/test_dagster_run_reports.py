"""The run-report sensors (orchestration/defs/run_reports/sensors.py) on real runs of a real
instance, ticked as the daemon ticks them, into a Datadog intake over real HTTP: each finished
run (success, failure, canceled) reported once with its tags and values; nothing sent, and the
sensors healthy, when Datadog is unreachable or not configured. The gate's verdicts per day on
the real pipeline are in test_pipeline.py."""

from __future__ import annotations

import socket

import dagster as dg
import pytest

from orchestration.defs.run_reports import sensors
from orchestration.defs.run_reports.sensors import SENSORS, evaluate
from orchestration.resources import DatadogResource
from sandbox.intake import IntakeThread, read_records

KEY = "run-reports-test-key"
PARTITION = "2026-01-15"


@dg.op
def counted() -> int:
    return 1


@dg.op
def breaks(value: int) -> int:
    raise RuntimeError(f"broke after {value}")


@dg.job
def tiny_ok():
    counted()


@dg.job
def tiny_broken():
    breaks(counted())


@pytest.fixture()
def intake(tmp_path):
    with IntakeThread(tmp_path / "records.jsonl", api_key=KEY) as it:
        yield it


@pytest.fixture()
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture()
def warnings(capfd):
    """``said()``: the warning lines logged so far (a sensor tick's logger writes to the
    console, not to Python's logging tree)."""
    def said() -> list[str]:
        return [line for line in capfd.readouterr().err.splitlines() if " - WARNING - " in line]

    return said


def _datadog(url: str) -> DatadogResource:
    return DatadogResource(api_key=KEY, api_host=url, env="local")


def _series(records) -> list[dict]:
    return [s for r in records if r["path"] == "/api/v1/series" for s in r["body"]["series"]]


def _events(records) -> list[dict]:
    return [r["body"] for r in records if r["path"] == "/api/v1/events"]


def test_each_finished_run_is_reported_once(intake, instance):
    datadog = _datadog(intake.url)
    cursors = evaluate(instance, datadog, {})  # the first tick starts from now
    assert set(cursors) == {s.name for s in SENSORS} and all(cursors.values())
    ok = tiny_ok.execute_in_process(instance=instance, tags={"dagster/partition": PARTITION})
    broken = tiny_broken.execute_in_process(instance=instance, raise_on_error=False)
    assert ok.success and not broken.success
    queued = instance.create_run_for_job(tiny_ok)
    instance.report_run_canceled(queued, "canceled before it started")
    assert read_records(intake.records) == []  # the runs themselves send nothing

    cursors = evaluate(instance, datadog, cursors)
    records = read_records(intake.records)
    series = {(s["metric"], tuple(s["tags"])): s for s in _series(records)}
    ok_tags = ("env:local", "job:tiny_ok", "outcome:success")
    broken_tags = ("env:local", "job:tiny_broken", "outcome:failure")
    canceled_tags = ("env:local", "job:tiny_ok", "outcome:canceled")
    assert set(series) == {("tokenwatch.pipeline.run.count", t)
                           for t in (ok_tags, broken_tags, canceled_tags)} | {
        ("tokenwatch.pipeline.run.duration_s", t) for t in (ok_tags, broken_tags)}
    for tags in (ok_tags, broken_tags, canceled_tags):
        count = series[("tokenwatch.pipeline.run.count", tags)]
        assert count["type"] == "count" and count["points"][0][1] == 1.0
    for run, tags in ((ok, ok_tags), (broken, broken_tags)):
        record = instance.get_run_record_by_id(run.run_id)
        duration = series[("tokenwatch.pipeline.run.duration_s", tags)]
        assert duration["type"] == "gauge"
        assert duration["points"][0] == [int(record.end_time), pytest.approx(
            record.end_time - record.start_time, abs=1e-3)]
    # no run here evaluated the gate: no withheld_days, not even a zero
    assert not any(metric.endswith("withheld_days") for metric, _ in series)

    events = {e["tags"][2]: e for e in _events(records)}
    assert set(events) == {"outcome:success", "outcome:failure", "outcome:canceled"}
    success, failure, canceled = (events[f"outcome:{o}"]
                                  for o in ("success", "failure", "canceled"))
    assert success["alert_type"] == "success"
    assert success["tags"] == [*ok_tags, f"partition:{PARTITION}"]
    assert ok.run_id in success["text"] and f"partition: {PARTITION}" in success["text"]
    assert success["aggregation_key"] == f"tokenwatch-run-tiny_ok-{PARTITION}"
    assert failure["alert_type"] == "error" and failure["tags"] == list(broken_tags)
    assert broken.run_id in failure["text"] and "failed steps (1): `breaks`" in failure["text"]
    assert "broke after" not in failure["text"]  # names, never an error's message
    assert failure["aggregation_key"] == "tokenwatch-run-tiny_broken-unpartitioned"
    assert canceled["alert_type"] == "warning" and queued.run_id in canceled["text"]

    # the next ticks send nothing new: each run was reported once, by its status's sensor
    assert evaluate(instance, datadog, cursors) == cursors
    assert len(read_records(intake.records)) == len(records)


def test_an_unreachable_datadog_never_fails_the_sensor(instance, warnings):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    datadog = _datadog(closed)
    cursors = evaluate(instance, datadog, {})
    run = tiny_broken.execute_in_process(instance=instance, raise_on_error=False)
    after = evaluate(instance, datadog, cursors)  # no exception: the tick succeeds
    assert after["run_report_failure"] != cursors["run_report_failure"]  # the run is passed
    (said,) = [m for m in warnings() if run.run_id in m]
    assert f"run {run.run_id} (tiny_broken, failure) was not reported to Datadog" in said
    assert KEY not in said


def test_without_datadog_configured_the_sensors_say_so_once(instance, intake, monkeypatch,
                                                           tmp_path, warnings):
    for name in ("TOKENWATCH_DD_API_HOST", "DD_API_KEY", "DD_APP_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOKENWATCH_HOME", str(tmp_path / "no-stack"))  # no local stack
    monkeypatch.setattr(sensors, "_SAID_UNCONFIGURED", set())
    datadog = DatadogResource()  # the environment's Datadog: the local stack's, which is down
    cursors = evaluate(instance, datadog, {})
    for _ in range(2):
        tiny_ok.execute_in_process(instance=instance)
        cursors = evaluate(instance, datadog, cursors)
    said = [m for m in warnings() if "Datadog is not configured" in m]
    assert len(said) == 1 and "local stack is not up" in said[0]
    assert read_records(intake.records) == []
