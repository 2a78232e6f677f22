"""The reports API's OpenAPI document is its contract: schemathesis, driven by
``/openapi.json`` alone, fuzzes the live API (on a private copy of the built DuckDB warehouse,
timelines from the world's PostgreSQL) with every check on and finds nothing: no 5xx,
documented status codes, content types, headers and bodies, schema-violating requests refused.
``schemathesis.toml`` beside this file says which check is narrowed where, and why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reporting.reports_api import KEY, duckdb_log, duckdb_reader, replica_copy, serve

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture()
def api(built_duckdb, world, tmp_path):
    replica = replica_copy(built_duckdb.path, tmp_path / "replica.duckdb")
    log = duckdb_log(tmp_path / "reports-access.duckdb")
    with serve(duckdb_reader(replica), state_dsn=world.pg_dsn, access_log=log) as svc:
        yield svc


def test_schemathesis_finds_nothing(api, tmp_path):
    report_dir = tmp_path / "report"
    cmd = [str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{api.url}/openapi.json",
           "-H", f"Authorization: Bearer {KEY}", "--seed", "20261202",
           "--max-examples", "60", "--phases", "examples,coverage,fuzzing", "--workers", "1",
           "--warnings", "off", "--report", "json", "--report-dir", str(report_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    reports = sorted(report_dir.glob("*.json"))
    assert reports, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(reports[-1].read_text())
    assert done.returncode == 0 and report["failures"] == [] and report["errors"] == [], (
        done.stdout[-8000:])
    assert report["operations"]["errored"] == 0
    print("schemathesis:", json.dumps({"operations": report["operations"]["tested"],
                                       "examples": report["test_cases"]["generated"],
                                       "seconds": round(report["running_time"], 1)}))
    assert report["operations"]["tested"] == 6  # every operation of the document
