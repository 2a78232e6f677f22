"""`tokenwatch ingest` against the running local stack, as a user runs it."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import psycopg

CLI = [sys.executable, "-m", "tokenwatch.cli", "ingest"]


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=300,
                          env=os.environ | env)


def test_ingest_loads_the_stack_and_reports_per_source(local_stack, client, tmp_path):
    created = client.post("/v1/tokens", json={
        "token_ref": "tok-cli", "wallet_id": "samsung_pay", "network": "visa",
        "token_type": "hce", "card_ref": "card-cli", "event_id": "cli-create",
        "occurred_at": "2026-11-02T09:59:00+00:00"})
    assert created.status_code in (200, 201), created.text
    s3, kinesis = local_stack.s3_client(), local_stack.kinesis_client()
    line = {"request_id": "cli-1", "request_time": "2026-11-02T10:00:00+00:00",
            "route": "POST /v1/provision", "status": 503, "latency_ms": 812.0,
            "wallet_id": "samsung_pay"}
    s3.put_object(Bucket=local_stack.bucket, Key="apigw/dt=2026-11-02/hour=10/part-cli.json.gz",
                  Body=gzip.compress((json.dumps(line) + "\n{broken\n").encode()))
    event = {"event_id": "cli-ev-1", "event_type": "idv_challenge", "schema_version": 1,
             "event_time": "2026-11-02T10:00:00+00:00", "wallet_id": "samsung_pay",
             "token_ref": "tok-cli"}
    kinesis.put_records(StreamName=local_stack.stream, Records=[
        {"PartitionKey": "tok-cli", "Data": json.dumps(event)}] * 2)
    env = {"TOKENWATCH_WAREHOUSE": "duckdb",
           "TOKENWATCH_DUCKDB_PATH": str(tmp_path / "cli.duckdb")}
    r = _run(["--json"], env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["s3"]["rows_loaded"] == 1 and report["s3"]["quarantined"] == 1
    assert report["wallet_events"]["rows_loaded"] == 1
    assert report["wallet_events"]["duplicates"] == 1
    with psycopg.connect(local_stack.pg_dsn) as conn:
        source = conn.execute("select count(*) from token_state_transitions").fetchone()[0]
    # everything below the snapshot's xmin: all of it on a server with no other open writer
    assert 1 <= report["transitions"]["rows_loaded"] <= source

    r = _run(["--source", "s3"], env)  # the readable summary: nothing new this time
    assert r.returncode == 0, r.stderr
    assert "ingested into duckdb" in r.stdout and "already loaded" in r.stdout


def test_unknown_source_is_one_readable_error(local_stack, tmp_path):
    r = _run(["--source", "kafka"], {"TOKENWATCH_DUCKDB_PATH": str(tmp_path / "x.duckdb")})
    assert r.returncode == 2
    assert "unknown source(s) kafka" in r.stderr and "Traceback" not in r.stderr


def test_print_schema_lists_every_raw_table():
    r = subprocess.run(CLI + ["--print-schema"], capture_output=True, text=True, timeout=60,
                       env=os.environ | {"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    for table in ("raw.token_state_transitions", "raw.wallet_events", "raw.apigw_logs",
                  "raw.lambda_logs", "raw.quarantine", "raw._ingest_state", "raw._s3_manifest"):
        assert table in r.stdout
