"""Datadog APM of the reports API, over the real protocol: the API on a copy of the built DuckDB
warehouse (timelines from the world's PostgreSQL), traced to Datadog's test agent. Snapshot:
tests/reporting/reports_apm_snapshot.json (TOKENWATCH_UPDATE_SNAPSHOT=1 rewrites it)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import psycopg

from tests.apm import (
    ENV,
    VERSION,
    capture_logs,
    check_snapshot,
    log_lines,
    request_span,
    shape,
    traced,
    wait_for_traces,
)
from tests.reporting.reports_api import KEY, duckdb_reader, replica_copy, serve
from tokenwatch import tracing

SNAPSHOT = Path(__file__).with_name("reports_apm_snapshot.json")


def test_the_reports_api_traces_to_the_agent_without_a_secret(apm_agent, built_duckdb, world,
                                                               tmp_path, monkeypatch):
    replica = replica_copy(built_duckdb.path, tmp_path / "replica.duckdb")
    with psycopg.connect(world.pg_dsn) as conn:
        (token_ref,) = conn.execute("select token_ref from tokens limit 1").fetchone()
    with traced(apm_agent, monkeypatch) as (token, logs):
        with serve(duckdb_reader(replica), state_dsn=world.pg_dsn) as svc:
            capture_logs(logs)
            auth = {"Authorization": f"Bearer {KEY}"}
            answers = {
                "catalogue": httpx.get(f"{svc.url}/v1/metrics", headers=auth),
                "query": httpx.get(f"{svc.url}/v1/query", headers=auth, params={
                    "metrics": "api_requests", "group_by": "wallet"}),
                "bad query": httpx.get(f"{svc.url}/v1/query", headers=auth,
                                       params={"metrics": "no_such_metric"}),
                "no key": httpx.get(f"{svc.url}/v1/metrics"),
                "timeline": httpx.get(f"{svc.url}/v1/tokens/{token_ref}/timeline",
                                      headers=auth),
            }
            statuses = {k: r.status_code for k, r in answers.items()}
            assert statuses["catalogue"] == statuses["query"] == 200, statuses
            assert statuses["bad query"] == 400 and statuses["no key"] == 401, statuses
            traces = wait_for_traces(apm_agent, token, roots=len(answers) + 1)  # + /healthz

    assert apm_agent.check_failures() is None, apm_agent.check_failures()
    roots = [request_span(t) for t in traces]
    for span in (s for t in traces for s in t):
        assert span["service"] == tracing.REPORTS_SERVICE
        assert span["meta"].get("env") == ENV
    assert all(r["meta"]["version"] == VERSION for r in roots)
    resources = {r["resource"] for r in roots}
    assert {"GET /v1/metrics", "GET /v1/query",
            "GET /v1/tokens/{token_ref}/timeline"} <= resources, resources
    unauthorized = [r for r in roots if r["meta"]["http.status_code"] == "401"]
    assert [r["meta"]["tokenwatch.error_code"] for r in unauthorized] == ["unauthorized"]
    everything = json.dumps(traces) + logs.getvalue()
    for secret in (KEY, token_ref, "api_requests", "no_such_metric", "Bearer"):
        assert secret not in everything, secret
    lines = [x for x in log_lines(logs) if x["logger"] == "tokenwatch.requests"]
    # one line per request made after the capture began (the startup probe's went to stderr)
    assert len(lines) == len(answers)
    assert {x["dd.span_id"] for x in lines} <= {str(r["span_id"]) for r in roots}
    check_snapshot(SNAPSHOT, shape(traces),
                   ".venv/bin/python -m pytest tests/reporting/test_reports_apm.py")
