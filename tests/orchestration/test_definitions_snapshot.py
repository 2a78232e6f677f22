"""The Dagster definitions against a committed snapshot, so that nothing drifts unnoticed: every
asset (group, kinds, partitions), every check (blocking, partitioned), every job (the assets and
checks it selects), every schedule (cron, job, default status) and sensor (kind, jobs, default
status). A change to any of them fails here with a diff; when the change is meant, write the
snapshot again and commit it with the change:

    TOKENWATCH_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest \
        tests/orchestration/test_definitions_snapshot.py

The partitions' first day is a setting (``TOKENWATCH_PARTITIONS_START``), so the snapshot
records their kind, not their start; default statuses depend on ``TOKENWATCH_ENV``, so the
snapshot names the environment it was taken in.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import dagster as dg

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")
UPDATE = "TOKENWATCH_UPDATE_SNAPSHOT"
COMMAND = (f"{UPDATE}=1 .venv/bin/python -m pytest "
           "tests/orchestration/test_definitions_snapshot.py")


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> dict | None:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return {"kind": type(partitions_def).__name__, "cron": partitions_def.cron_schedule,
                "timezone": partitions_def.timezone, "format": partitions_def.fmt,
                "end_offset": partitions_def.end_offset}
    return {"kind": type(partitions_def).__name__}


def _keys(keys) -> list[str]:
    return sorted(k.to_user_string() for k in keys)


def snapshot(defs: dg.Definitions) -> dict:
    """What the definitions declare, as plain sorted JSON."""
    from tokenwatch import config

    graph = defs.resolve_asset_graph()
    repo = defs.get_repository_def()
    assets = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name, "kinds": sorted(node.kinds),
            "partitions": _partitions(node.partitions_def),
            "materializable": node.is_materializable}
    checks = {}
    for key in graph.asset_check_keys:
        node = graph.get(key)
        checks[key.to_user_string()] = {
            "asset": key.asset_key.to_user_string(), "name": key.name,
            "blocking": node.blocking, "partitioned": node.partitions_def is not None}
    jobs = {}
    for job in repo.get_all_jobs():
        if job.name.startswith("__"):  # Dagster's implicit job of every asset
            continue
        layer = job.asset_layer
        jobs[job.name] = {"assets": _keys(layer.selected_asset_keys),
                          "checks": _keys(layer.asset_graph.asset_check_keys)}
    schedules = {s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone,
                          "job": s.job_name, "default_status": s.default_status.value}
                 for s in repo.schedule_defs}
    sensors = {s.name: {"type": s.sensor_type.value,
                        "jobs": sorted(t.job_name for t in s.targets),
                        "default_status": s.default_status.value}
               for s in repo.sensor_defs}
    return {"environment": config.env_name(), "assets": assets, "checks": checks,
            "jobs": jobs, "schedules": schedules, "sensors": sensors}


def _text(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def compare(committed_path: Path, current: str) -> None:
    """Fail, with a unified diff and the command that updates it, when ``current`` is not
    the committed snapshot."""
    assert committed_path.exists(), f"no snapshot yet: write it with `{COMMAND}`"
    committed = committed_path.read_text()
    if committed != current:
        diff = "".join(difflib.unified_diff(
            committed.splitlines(keepends=True), current.splitlines(keepends=True),
            fromfile=f"{committed_path.name} (committed)", tofile="the definitions now", n=2))
        raise AssertionError(
            f"the Dagster definitions differ from {_shown(committed_path)}:\n{diff}"
            f"\nIf the change is meant, write the snapshot again and commit it with the "
            f"change:\n    {COMMAND}")


def test_the_definitions_match_the_snapshot():
    from orchestration.definitions import defs

    current = _text(snapshot(defs))
    if os.environ.get(UPDATE):
        SNAPSHOT.write_text(current)
    compare(SNAPSHOT, current)


def test_the_snapshot_names_what_a_data_engineer_looks_for():
    """The snapshot itself holds the things it promises (a check that it is not empty or
    shallow): the gate's blocking checks, the publish asset's partitions, the jobs and the
    schedules and sensors with their default status."""
    data = json.loads(SNAPSHOT.read_text())
    gate = data["checks"]["wallet/wallet_provisioning_daily:kpi_suite"]
    assert gate == {"asset": "wallet/wallet_provisioning_daily", "name": "kpi_suite",
                    "blocking": True, "partitioned": True}
    assert data["assets"]["datadog/kpis"]["partitions"]["cron"] == "0 0 * * *"
    assert data["assets"]["datadog/kpis"]["group"] == "publication"
    assert {"ingest", "load_lake", "marts_and_kpis", "compliance", "republish"} <= set(
        data["jobs"])
    assert "datadog/kpis" in data["jobs"]["marts_and_kpis"]["assets"]
    assert "wallet/wallet_provisioning_daily:kpi_suite" in data["jobs"]["republish"]["checks"]
    assert data["schedules"]["marts_hourly"]["job"] == "marts_and_kpis"
    assert {"publication_withheld", "new_lake_objects", "run_report_success",
            "run_report_failure", "run_report_canceled"} <= set(data["sensors"])
    assert all("default_status" in s for s in [*data["schedules"].values(),
                                               *data["sensors"].values()])


def test_a_drift_fails_with_a_readable_diff(tmp_path):
    """A changed definition fails the comparison, naming what changed and how to update."""
    import pytest

    from orchestration.definitions import defs

    data = snapshot(defs)
    current = _text(data)
    cron = data["schedules"]["marts_hourly"]["cron"]
    data["schedules"]["marts_hourly"]["cron"] = "0 0 1 1 *"
    stale = tmp_path / "definitions_snapshot.json"
    stale.write_text(_text(data))
    with pytest.raises(AssertionError) as failure:
        compare(stale, current)
    message = str(failure.value)
    assert '-   "cron": "0 0 1 1 *",' in message and f'+   "cron": "{cron}",' in message
    assert COMMAND in message
    compare(stale, _text(data))  # the same text passes
