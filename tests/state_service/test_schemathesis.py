"""The OpenAPI document is the contract: schemathesis, driven by ``/openapi.json`` alone, fuzzes
the live service on real PostgreSQL with every check on (no 5xx, documented status codes,
content types, headers and bodies; schema-valid requests accepted, schema-violating ones
refused) and finds nothing. It also reaches the storage code: the run creates tokens and
transitions, counted in the database afterwards.

Two runs, each with a fixed seed and a bounded number of examples: the stateful phase first,
on an empty database (it follows the OpenAPI links from a creation to the token's
transitions), then the examples, coverage and fuzzing phases.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from state_service import roles
from state_service.app import create_app
from state_service.migrate import migrate
from state_service.server import ServiceThread
from tokenwatch.postgres import drop_database, ensure_database

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
RUNS = {"stateful": ("stateful", 150), "stateless": ("examples,coverage,fuzzing", 100)}


@pytest.fixture()
def fresh_service(pg_server):
    name = f"tokenwatch_st_{uuid.uuid4().hex[:10]}"
    dsn = ensure_database(pg_server, name)
    migrate(dsn)
    try:
        service_dsn = roles.role_dsn(dsn, roles.SERVICE)  # the service under its role
        with ServiceThread(create_app(service_dsn, api_keys=["st-write"], read_keys=["st-read"],
                                      pool_size=8, run_migrations=False)) as svc:
            yield svc, dsn
    finally:
        drop_database(pg_server, name)


def run_schemathesis(url: str, phases: str, examples: int, report_dir: Path) -> dict:
    cmd = [str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{url}/openapi.json",
           "-H", "Authorization: Bearer st-write", "--seed", "20261201",
           "--max-examples", str(examples), "--phases", phases, "--workers", "1",
           "--warnings", "off", "--report", "json", "--report-dir", str(report_dir)]
    # in a directory of its own: its example database never carries over between runs
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          cwd=report_dir.parent)
    reports = sorted(report_dir.glob("*.json"))
    assert reports, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(reports[-1].read_text())
    assert done.returncode == 0 and report["failures"] == [] and report["errors"] == [], (
        done.stdout[-6000:])
    return report


def test_schemathesis_finds_nothing_and_reaches_storage(fresh_service, tmp_path):
    svc, dsn = fresh_service
    figures = {}
    for name, (phases, examples) in RUNS.items():
        report = run_schemathesis(svc.url, phases, examples, tmp_path / name)
        assert report["operations"]["errored"] == 0
        figures[name] = {"operations": report["operations"]["tested"],
                         "examples": report["test_cases"]["generated"],
                         "failures": report["test_cases"]["unique_failures"],
                         "seconds": round(report["running_time"], 1)}
    with psycopg.connect(dsn) as conn:
        tokens = conn.execute("select count(*) from tokens").fetchone()[0]
        transitions = conn.execute(
            "select count(*) from token_state_transitions where version > 1").fetchone()[0]
    figures |= {"tokens_created": tokens, "transitions_recorded": transitions}
    print("schemathesis:", json.dumps(figures))
    assert figures["stateless"]["operations"] == 6  # every operation of the document
    assert tokens >= 10 and transitions >= 1, figures
