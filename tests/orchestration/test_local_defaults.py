"""Dagster's local defaults: opening the UI starts nothing (schedules and sensors stopped
locally, running in prod), the instance lives under .tokenwatch/ (nothing new in `git status`),
the code location is named `tokenwatch`, and the daily partitions start where the data starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from orchestration import automation
from orchestration.definitions import defs
from orchestration.partitions import DEFAULT_DAYS, start_day
from tokenwatch import config, stack_file

ROOT = config.project_root()
BIN = Path(sys.executable).parent


def _statuses(env: str) -> dict[str, str]:
    """name -> default status of every schedule and sensor, as a fresh process with
    TOKENWATCH_ENV=env builds the definitions."""
    code = ("import json\nfrom orchestration.definitions import defs\n"
            "print(json.dumps({s.name: s.default_status.value "
            "for s in [*defs.schedules, *defs.sensors]}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, cwd=ROOT, env=os.environ | {"TOKENWATCH_ENV": env})
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_schedules_and_sensors_are_stopped_locally_and_running_in_prod():
    local = {s.name: s.default_status.value for s in [*defs.schedules, *defs.sensors]}
    assert config.env_name() == "local"
    assert {"ingest_every_15_minutes", "marts_hourly", "compliance_schedule",
            "new_lake_objects", "publication_withheld", "run_report_success",
            "run_report_failure", "run_report_canceled"} <= set(local)
    assert set(local.values()) == {"STOPPED"}, local
    prod = _statuses("prod")
    assert prod.keys() == local.keys() and set(prod.values()) == {"RUNNING"}, prod
    assert automation.schedule_status("prod") == dg.DefaultScheduleStatus.RUNNING
    assert automation.sensor_status("local") == dg.DefaultSensorStatus.STOPPED


def _make_dagster_home(env: dict[str, str]) -> Path:
    r = subprocess.run(["make", "-s", "print-dagster-home"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    return Path(r.stdout.strip())


def _untracked_top_level() -> set[str]:
    """Top-level names `git status` shows (what a Dagster home at the root would add)."""
    r = subprocess.run(["git", "status", "--porcelain", "--untracked-files=normal"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    return {line[3:].split("/", 1)[0] for line in r.stdout.splitlines()}


def test_the_dagster_home_is_under_tokenwatch_and_git_ignored():
    env = {k: v for k, v in os.environ.items() if k not in ("TOKENWATCH_HOME", "DAGSTER_HOME")}
    home = _make_dagster_home(env)
    assert home == ROOT / ".tokenwatch" / "dagster"
    assert (home / "dagster.yaml").read_text() == (
        ROOT / "orchestration" / "dagster.yaml").read_text()
    ignored = subprocess.run(["git", "check-ignore", "-q", str(home / "dagster.yaml")],
                             cwd=ROOT, timeout=60)
    assert ignored.returncode == 0, f"{home} is not git-ignored"
    assert not (ROOT / "dagster.yaml").exists(), "a dagster.yaml at the root: which one is used?"


def test_running_on_the_instance_adds_nothing_to_git_status(tmp_path):
    """What `make demo` and `make dagster` do with the instance: runs on it in process (the
    demo's steps.instance()) and the workspace loaded (`dagster definitions validate`), from
    the repository root; every file lands in DAGSTER_HOME, none in `git status`; the code
    location is `tokenwatch`."""
    env = os.environ | {"TOKENWATCH_HOME": str(tmp_path / "home")}
    home = _make_dagster_home(env)
    assert home == tmp_path / "home" / "dagster"
    env |= {"DAGSTER_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    before = _untracked_top_level()
    run = ("import dagster as dg\nfrom sandbox.demo.steps import instance\n"
           "@dg.asset\ndef probe(): return 1\n"
           "inst = instance()\nassert not inst.is_ephemeral\n"
           "assert dg.materialize([probe], instance=inst).success\n")
    r = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True,
                       timeout=300, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    validate = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-w",
                               "workspace.yaml"], capture_output=True, text=True, timeout=300,
                              cwd=ROOT, env=env)
    out = validate.stdout + validate.stderr
    assert validate.returncode == 0, out[-3000:]
    assert "Validation successful for code location tokenwatch." in out
    new = _untracked_top_level() - before
    assert not new, f"new in git status after using the instance: {sorted(new)}"
    assert (home / "history" / "runs.db").exists()  # the run went to DAGSTER_HOME


def test_workspace_and_pyproject_name_the_same_location():
    import tomllib

    import yaml

    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    assert entry["python_module"] == {"module_name": "orchestration.definitions",
                                      "location_name": "tokenwatch"}
    assert pyproject["dagster"] == {"module_name": "orchestration.definitions",
                                    "code_location_name": "tokenwatch"}
    assert pyproject["dg"]["project"]["code_location_target_module"] == (
        "orchestration.definitions")
    assert pyproject["dg"]["project"]["code_location_name"] == "tokenwatch"
    assert "dagster dev -w workspace.yaml" in (ROOT / "Makefile").read_text()


# -- where the partitions start --------------------------------------------------------------


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENWATCH_HOME", str(tmp_path))
    monkeypatch.delenv("TOKENWATCH_PARTITIONS_START", raising=False)
    monkeypatch.delenv("TOKENWATCH_ENV", raising=False)
    return tmp_path


def _stack() -> stack_file.Stack:
    return stack_file.Stack(aws_endpoint="http://127.0.0.1:1", region="us-east-1", bucket="b",
                            stream="s", shards=1, intake_url="http://127.0.0.1:2",
                            intake_records="/dev/null", pg_dsn="host=127.0.0.1 dbname=x",
                            pg_source="test")


def test_partitions_start_where_the_data_starts(home, monkeypatch):
    today = date(2026, 12, 2)
    assert start_day(today) == today - timedelta(days=DEFAULT_DAYS)  # no stack, no setting
    _stack().save()
    assert stack_file.data_start() is None
    assert start_day(today) == today - timedelta(days=DEFAULT_DAYS)  # nothing simulated yet
    assert stack_file.record_data_start(date(2026, 11, 20)) == date(2026, 11, 20)
    assert start_day(today) == date(2026, 11, 20)
    # a later simulation keeps the earliest day; an earlier one moves it
    assert stack_file.record_data_start(date(2026, 11, 25)) == date(2026, 11, 20)
    assert stack_file.record_data_start(date(2026, 10, 1)) == date(2026, 10, 1)
    assert json.loads((home / "stack.json").read_text())["data_start"] == "2026-10-01"
    assert stack_file.Stack.load().data_start == "2026-10-01"
    assert start_day(today) == date(2026, 10, 1)
    monkeypatch.setenv("TOKENWATCH_PARTITIONS_START", "2026-06-15")  # the setting wins
    assert start_day(today) == date(2026, 6, 15)
    monkeypatch.setenv("TOKENWATCH_PARTITIONS_START", "")
    assert start_day(today) == date(2026, 10, 1)
    monkeypatch.setenv("TOKENWATCH_ENV", "prod")  # no local stack in production
    assert start_day(today) == today - timedelta(days=DEFAULT_DAYS)


def test_an_unreadable_stack_file_falls_back(home):
    (home / "stack.json").write_text("not json")
    assert stack_file.data_start() is None
    (home / "stack.json").write_text(json.dumps({"data_start": "yesterday"}))
    assert stack_file.data_start() is None
