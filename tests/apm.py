"""Shared by the APM tests: tracing on for one test, pointed at the session's test agent; the
traces it received, waited for; their snapshot (ids, times and durations left out) against a
committed JSON file (``TOKENWATCH_UPDATE_SNAPSHOT=1`` writes it again)."""

from __future__ import annotations

import difflib
import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tokenwatch import tracing

UPDATE = "TOKENWATCH_UPDATE_SNAPSHOT"
ENV, VERSION = "apm-test", "9.9.9-apm"


@contextmanager
def traced(agent, monkeypatch) -> Iterator[tuple[str, io.StringIO]]:
    """Tracing on (to ``agent``) for the apps created inside; yields the agent's session token
    and what the JSON log handler wrote."""
    token = f"apm-{uuid.uuid4().hex[:8]}"
    agent.start_session(token)
    monkeypatch.setenv("DD_TRACE_ENABLED", "true")
    monkeypatch.setenv("DD_TRACE_AGENT_URL", agent.url)
    monkeypatch.setenv("DD_ENV", ENV)
    monkeypatch.setenv("DD_VERSION", VERSION)
    logs = io.StringIO()
    try:
        yield token, logs
    finally:
        tracing.stop()


def capture_logs(logs: io.StringIO) -> None:
    handler = tracing.log_handler()
    assert handler is not None, "tracing on installs the JSON log handler"
    handler.setStream(logs)


def wait_for_traces(agent, token: str, roots: int, timeout: float = 30) -> list[list[dict]]:
    """The session's traces once ``roots`` request spans arrived (ddtrace sends each second)."""
    deadline = time.monotonic() + timeout
    traces: list[list[dict]] = []
    while time.monotonic() < deadline:
        tracing.flush()
        traces = agent.traces(token)
        if sum(1 for t in traces for s in t if s["name"] == tracing.SPAN_NAME) >= roots:
            return traces
        time.sleep(0.3)
    raise AssertionError(f"{roots} request spans expected, the agent has "
                         f"{[s['resource'] for t in traces for s in t]}")


def request_span(trace: list[dict]) -> dict:
    (root,) = [s for s in trace if s["name"] == tracing.SPAN_NAME]
    return root


#: Values of these tags are part of the snapshot (the rest: only their keys).
SNAPSHOT_VALUES = ("http.method", "http.route", "http.url", "http.status_code",
                   "tokenwatch.error_code", "error.type", "span.kind", "component", "env",
                   "version", "db.system", "language")


#: The child spans the snapshot records: the queries that ran (psycopg's connection-level spans
#: and a query failing on a closed connection come and go with the pool's state); ddtrace's
#: internal ``_dd.*`` keys are left out.
STABLE_CHILDREN = frozenset({"postgres.query"})


def shape(traces: list[list[dict]]) -> list[dict]:
    """Each request's trace as a stable record: its request span (name, service, resource,
    type, error, tag keys and the bounded values) and the kinds of spans below it (name,
    service, type, tag keys: not their SQL, which the store may change)."""
    out = []
    for trace in traces:
        root = request_span(trace)
        children = {json.dumps(_span_shape(s, values=False), sort_keys=True)
                    for s in trace if s is not root and s["name"] in STABLE_CHILDREN
                    and not s.get("error")}
        out.append({"request": _span_shape(root, values=True),
                    "below": [json.loads(c) for c in sorted(children)]})
    return sorted(out, key=lambda r: (r["request"]["resource"],
                                      r["request"]["meta"].get("http.status_code", "")))


def _span_shape(span: dict, values: bool) -> dict:
    meta = span.get("meta", {})
    record = {"name": span["name"], "service": span["service"], "type": span.get("type"),
              "error": span.get("error", 0),
              "meta_keys": sorted(k for k in meta if not k.startswith("_dd.")),
              "metric_keys": sorted(k for k in span.get("metrics", {})
                                    if not k.startswith("_dd."))}
    if values:
        record["resource"] = span["resource"]
        record["meta"] = {k: meta[k] for k in SNAPSHOT_VALUES if k in meta}
    return record


def check_snapshot(path: Path, actual: list[dict], command: str) -> None:
    text = json.dumps(actual, indent=2, sort_keys=True) + "\n"
    if os.environ.get(UPDATE) == "1" or not path.exists():
        path.write_text(text)
        if os.environ.get(UPDATE) != "1":
            raise AssertionError(f"{path.name} was missing and is now written: commit it")
        return
    expected = path.read_text()
    if expected != text:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            str(path.name), "now"))
        raise AssertionError(f"the spans changed; if meant, run `{UPDATE}=1 {command}`:\n"
                             + diff)


def log_lines(logs: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]


def trace_ids(span: dict) -> set[str]:
    """The forms a log line may carry the span's trace id in: 64-bit decimal, 128-bit hex."""
    low = span["trace_id"]
    high = span.get("meta", {}).get("_dd.p.tid")
    ids = {str(low)}
    if high:
        ids.add(f"{high}{low:016x}")
    return ids
