"""Datadog APM of the state service, over the real protocol: the service (ServiceThread, real
PostgreSQL) traced to Datadog's test agent; what the agent received is read back over its HTTP
API. Snapshot: tests/state_service/apm_snapshot.json (TOKENWATCH_UPDATE_SNAPSHOT=1 rewrites it).
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import httpx

from state_service.app import create_app
from state_service.lifecycle import State
from state_service.server import ServiceThread
from tests.apm import (
    ENV,
    VERSION,
    capture_logs,
    check_snapshot,
    log_lines,
    request_span,
    shape,
    trace_ids,
    traced,
    wait_for_traces,
)
from tests.conftest import API_KEY
from tests.state_service.helpers import create_body, new_ref, token_in, transition_body
from tests.tcp_proxy import Proxy
from tokenwatch import tracing

SNAPSHOT = Path(__file__).with_name("apm_snapshot.json")
PAN = "4111111111111111"
ROOTS = 8


def test_the_service_traces_to_the_agent_without_a_secret(apm_agent, service_dsn, monkeypatch):
    ref = new_ref("apm")
    card_ref = f"card-secret-{uuid.uuid4().hex}"
    query_secret = f"q-{uuid.uuid4().hex}"
    proxy = Proxy(service_dsn).start()  # stopped before the last request: the database down
    with traced(apm_agent, monkeypatch) as (token, logs):
        app = create_app(proxy.proxied_dsn(), api_keys=[API_KEY], run_migrations=False)
        capture_logs(logs)
        with ServiceThread(app) as svc, httpx.Client(
                base_url=svc.url, timeout=30,
                headers={"Authorization": f"Bearer {API_KEY}"}) as c:
            answers = {
                "create": c.post("/v1/tokens", json=create_body(ref, card_ref=card_ref)),
                "transition": c.post(f"/v1/tokens/{ref}/transitions",
                                     json=transition_body("ProvisionInitiated")),
                "illegal": c.post(f"/v1/tokens/{ref}/transitions",
                                  json=transition_body("TokenActive")),
                "no key": httpx.get(f"{svc.url}/v1/tokens/{ref}?secret={query_secret}"),
                "pan": c.post("/v1/tokens", json=create_body(new_ref("apm"), card_ref=PAN)),
                "read": c.get(f"/v1/tokens/{ref}", params={"secret": query_secret}),
            }
            proxy.stop()
            answers["down"] = c.post("/v1/tokens", json=create_body(new_ref("apm")))
            statuses = {k: r.status_code for k, r in answers.items()}
            assert statuses == {"create": 201, "transition": 201, "illegal": 409,
                                "no key": 401, "pan": 422, "read": 200, "down": 503}, statuses
            # the ServiceThread's /healthz probe and the seven requests
            traces = wait_for_traces(apm_agent, token, roots=ROOTS)

    # the agent's own checks passed on every payload it received
    assert apm_agent.check_failures() is None, apm_agent.check_failures()
    roots = [request_span(t) for t in traces]
    by_resource = {(r["resource"], r["meta"]["http.status_code"]): r for r in roots}

    # one span per request, named by route template; the database below it
    assert ("POST /v1/tokens/{token_ref}/transitions", "409") in by_resource
    assert ("GET /v1/tokens/{token_ref}", "401") in by_resource  # refused before routing
    created = by_resource[("POST /v1/tokens", "201")]
    (create_trace,) = [t for t in traces if request_span(t) is created]
    db = [s for s in create_trace if s is not created]
    assert any(s["name"] == "postgres.query" and s["type"] == "sql" for s in db), db
    assert all(s["service"] == tracing.STATE_SERVICE for s in db)
    assert all(s["trace_id"] == created["trace_id"] for s in db)
    # service, env and version on every span
    for span in (s for t in traces for s in t):
        assert span["service"] == tracing.STATE_SERVICE
        assert span["meta"].get("env") == ENV, span
    assert all(r["meta"].get("version") == VERSION for r in roots)
    # error codes: every error answer carries its code; 5xx are error spans
    assert by_resource[("POST /v1/tokens/{token_ref}/transitions", "409")]["meta"][
        "tokenwatch.error_code"] == "illegal_transition"
    assert by_resource[("GET /v1/tokens/{token_ref}", "401")]["meta"][
        "tokenwatch.error_code"] == "unauthorized"
    assert by_resource[("POST /v1/tokens", "422")]["meta"][
        "tokenwatch.error_code"] == "invalid_request"
    down = by_resource[("POST /v1/tokens", "503")]
    assert down["error"] == 1 and down["meta"]["error.type"] == "database_unavailable"
    assert all(r["error"] == 0 for r in roots if int(r["meta"]["http.status_code"]) < 500)
    for span in (s for t in traces for s in t if s["name"] != tracing.SPAN_NAME):
        assert "error.stack" not in span["meta"], span  # a database error's may quote a value

    # nothing secret anywhere: not in any span, tag, resource or log line
    everything = json.dumps(traces) + logs.getvalue()
    for secret in (PAN, card_ref, ref, API_KEY, query_secret, "Bearer", "secret="):
        assert secret not in everything, secret

    # the log lines carry the ids of their request's span
    lines = [line for line in log_lines(logs) if line["logger"] == "tokenwatch.requests"]
    assert len(lines) == ROOTS
    for line in lines:
        (span,) = [r for r in roots if str(r["span_id"]) == line["dd.span_id"]]
        assert line["dd.trace_id"] in trace_ids(span)
        assert line["http.route"] == span["meta"]["http.route"]
        assert (line["dd.service"], line["dd.env"], line["dd.version"]) == (
            tracing.STATE_SERVICE, ENV, VERSION)

    check_snapshot(SNAPSHOT, shape(traces),
                   ".venv/bin/python -m pytest tests/state_service/test_apm.py")


def test_tracing_is_off_by_default_and_imports_nothing(service_dsn, monkeypatch):
    import subprocess
    import sys

    monkeypatch.delenv("DD_TRACE_ENABLED", raising=False)
    code = ("import sys; from state_service.app import create_app; "
            f"create_app({service_dsn!r}, api_keys=['k'], run_migrations=False); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ddtrace'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    # enabled without an agent: still off
    monkeypatch.setenv("DD_TRACE_ENABLED", "true")
    monkeypatch.delenv("DD_TRACE_AGENT_URL", raising=False)
    monkeypatch.delenv("DD_AGENT_HOST", raising=False)
    assert tracing.trace_settings() is None
    monkeypatch.setenv("DD_AGENT_HOST", "agent.example")
    assert tracing.trace_settings().agent_url == "http://agent.example:8126"


def test_a_group_of_writes_is_traced_once_under_its_first_write(apm_agent, service_dsn,
                                                                  monkeypatch):
    """Writes that wait go as one group (state_service/group_commit.py): its two round trips
    are one span each, in the trace of the group's first write, not one span per statement."""
    monkeypatch.setenv("TOKENWATCH_SERVICE_WRITE_GROUPS", "1")
    with traced(apm_agent, monkeypatch) as (token, _logs):
        app = create_app(service_dsn, api_keys=[API_KEY], run_migrations=False)
        with ServiceThread(app) as svc:
            headers = {"Authorization": f"Bearer {API_KEY}"}
            with httpx.Client(base_url=svc.url, headers=headers, timeout=30) as c:
                refs = [token_in(c, State.TOKEN_ACTIVE) for _ in range(12)]
            before = app.state.writes.groups

            def toggle(ref: str) -> None:
                with httpx.Client(base_url=svc.url, headers=headers, timeout=30) as own:
                    for to in (State.TOKEN_SUSPENDED, State.TOKEN_ACTIVE) * 3:
                        own.post(f"/v1/tokens/{ref}/transitions",
                                 json=transition_body(to)).raise_for_status()

            threads = [threading.Thread(target=toggle, args=(r,)) for r in refs]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            groups = app.state.writes.groups - before
            requests = 1 + 12 * 6 + 12 * 6  # healthz, the walks, the toggles
            traces = wait_for_traces(apm_agent, token, roots=requests)
    assert groups > 0
    grouped = [t for t in traces if any(s["resource"].startswith("batch: ") for s in t)]
    assert len(grouped) == groups
    for trace in grouped:
        root = request_span(trace)
        assert root["resource"] == "POST /v1/tokens/{token_ref}/transitions"
        below = sorted(s["resource"] for s in trace if s is not root)
        # the two round trips, and no span per statement of them (a rollback may follow)
        assert below[:2] == ["batch: locks, event ids, contexts",
                             "batch: tokens, rows, moves, commit"], below
        for span in trace:
            assert span["trace_id"] == root["trace_id"]
            assert span["service"] == tracing.STATE_SERVICE
    everything = json.dumps(traces)
    for secret in [*refs, API_KEY]:
        assert secret not in everything
