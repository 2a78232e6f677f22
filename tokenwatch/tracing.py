"""Datadog APM traces (``ddtrace``) of the HTTP services: off unless ``DD_TRACE_ENABLED`` is
true and an agent is set (``DD_TRACE_AGENT_URL``, or ``DD_AGENT_HOST``:``DD_TRACE_AGENT_PORT``).
Off, ``instrument`` returns at once: ddtrace is not even imported.

On: one span per request (``http.request``, resource ``METHOD /route/{template}``: the route's
template, never the concrete path, no query string), the psycopg calls below it (ddtrace's
psycopg integration: SQL text with placeholders, never the parameters; the batch writer's
pipelines one span per round trip, ``round_trip``), ``http.status_code``
and, on an answer with a JSON ``error`` field, that code (``tokenwatch.error_code``; a 5xx
marks the span as an error with it as ``error.type``). Tags are a fixed, bounded set: no
header, body, key, card_ref or token_ref value reaches a span. ``TOKENWATCH_TRACE_LOGS``: one
JSON log line per request on stderr with the request's ``dd.trace_id`` and ``dd.span_id``
(the ``tokenwatch`` loggers' lines are JSON then too).

ddtrace-run is not needed: the factory of each uvicorn worker process (``tokenwatch serve``,
``tokenwatch reports serve``) and an in-process ``ServiceThread`` call ``instrument``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from tokenwatch import config

STATE_SERVICE = "tokenwatch-state"
REPORTS_SERVICE = "tokenwatch-reports"
SPAN_NAME = "http.request"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: How much of an error answer is read for its ``error`` code (our bodies put it first).
_ERROR_PEEK = 4096
_CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_0123456789")
requests_log = logging.getLogger("tokenwatch.requests")
#: ``FastAPI(telemetry=...)`` for our apps: FastAPI's own OpenTelemetry instrumentation off.
#: Our traces are ddtrace's, scrubbed as above; FastAPI's would record validation failures'
#: messages (which can quote the input: a card number) as soon as any OpenTelemetry provider
#: is configured in the process, and costs a provider lookup per request even when none is.
FASTAPI_TELEMETRY_OFF: dict = {"tracing": False, "metrics": False, "logs": False,
                               "operation_spans": False}


@dataclass(frozen=True)
class TraceSettings:
    agent_url: str
    env: str
    version: str
    request_logs: bool


def trace_settings() -> TraceSettings | None:
    """What tracing runs with, or None when it is off (the default)."""
    settings = config.settings()
    if not settings.trace_enabled:
        return None
    url = settings.trace_agent_url
    if not url and settings.dd_agent_host:
        url = f"http://{settings.dd_agent_host}:{settings.trace_agent_port}"
    if not url:
        return None
    return TraceSettings(agent_url=url.rstrip("/"), env=settings.dd_env or settings.env,
                         version=settings.dd_version or _version(),
                         request_logs=settings.trace_logs)


def _version() -> str:
    try:
        return metadata.version("tokenwatch")
    except metadata.PackageNotFoundError:
        return "unknown"


def instrument(app: Any, service: str) -> None:
    """Trace ``app`` (a FastAPI/Starlette app) as ``service`` when tracing is on; else nothing.
    Call it once, anywhere in the app's factory: the span wraps the whole middleware stack."""
    ts = trace_settings()
    if ts is None:
        return
    tracer = _start(ts, service)
    build = app.build_middleware_stack
    router = app.router

    def traced_stack():
        return RequestSpans(build(), router, service, tracer, ts.request_logs, ts.version)

    app.build_middleware_stack = traced_stack


# -- ddtrace, once per process -----------------------------------------------------------
_lock = threading.Lock()
_state: dict[str, Any] = {}


def _start(ts: TraceSettings, service: str):
    """Import and point ddtrace at the agent (once), patch psycopg, install the JSON logs."""
    with _lock:
        if "tracer" not in _state:
            # ddtrace reads its configuration from the environment when imported: give it ours,
            # and switch off what a service does not need
            os.environ["DD_TRACE_AGENT_URL"] = ts.agent_url
            os.environ["DD_ENV"] = ts.env
            os.environ["DD_VERSION"] = ts.version
            os.environ["DD_SERVICE"] = service
            os.environ.update(_DDTRACE_DEFAULTS)
            from ddtrace.trace import tracer

            tracer.configure(trace_processors=[_scrubber()])
            _state["tracer"] = tracer
        tracer = _state["tracer"]
        import ddtrace  # already imported (by us, or before us by someone else)
        from ddtrace.internal.settings._agent import config as agent_config

        ddtrace.config.env, ddtrace.config.version = ts.env, ts.version
        ddtrace.config.service = ddtrace.config.service or service
        if not _state.get("patched"):
            from ddtrace.contrib.internal.psycopg.patch import patch

            patch()  # psycopg.connect and Connection.connect: every pool opened from now on
            _state["patched"] = True
        if agent_config.trace_agent_url != ts.agent_url:  # imported before, or a new agent
            agent_config.trace_agent_url = ts.agent_url
            tracer._recreate()
        tracer.enabled = True
        if ts.request_logs and "log_handler" not in _state:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(JsonFormatter())
            root = logging.getLogger("tokenwatch")
            root.addHandler(handler)
            _state.update(log_handler=handler, propagate=root.propagate, level=root.level)
            root.propagate = False  # one line per record: JSON, not also the text handler's
            if root.getEffectiveLevel() > logging.INFO:
                root.setLevel(logging.INFO)
        return tracer


_DDTRACE_DEFAULTS = {
    "DD_REMOTE_CONFIGURATION_ENABLED": "false",
    "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
    "DD_TRACE_STARTUP_LOGS": "false",
    "DD_DBM_PROPAGATION_MODE": "disabled",  # no comments added to our SQL
    "DD_TRACE_REMOVE_INTEGRATION_SERVICE_NAMES_ENABLED": "true",  # db spans: our service
    "DD_LOGS_INJECTION": "false",  # our JsonFormatter adds the ids; no logging patch
}


def stop() -> None:
    """Tracing off again in this process (tests, embedders): flush, unpatch psycopg, give the
    ``tokenwatch`` loggers back their handlers. The next ``instrument`` turns it on again."""
    with _lock:
        tracer = _state.get("tracer")
        if tracer is None:
            return
        tracer.flush()
        from ddtrace.contrib.internal.psycopg.patch import unpatch

        unpatch()
        _state["patched"] = False
        tracer.enabled = False
        handler = _state.pop("log_handler", None)
        if handler is not None:
            root = logging.getLogger("tokenwatch")
            root.removeHandler(handler)
            root.propagate = _state.pop("propagate")
            root.setLevel(_state.pop("level"))


def log_handler() -> logging.Handler | None:
    """The JSON handler tracing added to the ``tokenwatch`` loggers, if any (tests read it)."""
    return _state.get("log_handler")


def flush() -> None:
    """Send the finished spans now (tests; ddtrace sends every second by itself)."""
    tracer = _state.get("tracer")
    if tracer is not None:
        tracer.flush()


def _scrubber():
    from ddtrace.trace import TraceFilter

    class Scrub(TraceFilter):
        """Every span of a trace under its root's service and version (the db spans are the
        service's own); no exception message or stack (a database error's may quote a value)
        and no URL with a query string, whoever set them."""

        def process_trace(self, trace):
            root = next((s for s in trace if s.parent_id is None), None)
            version = root.get_tag("version") if root is not None else None
            for span in trace:
                if root is not None and span.service != root.service:
                    span.service = root.service
                if version and span.get_tag("version") != version:
                    span.set_tag("version", version)
                if span.get_tag("error.message") is not None and span is not root:
                    # an exception's message and stack (db spans): PostgreSQL's may quote a value
                    span.set_tag("error.message", span.get_tag("error.type") or "error")
                    span.remove_tag("error.stack")
                url = span.get_tag("http.url")
                if url and "?" in url:
                    span.set_tag("http.url", url.split("?", 1)[0])
            return trace

    return Scrub()


# -- the state service's own database spans ------------------------------------------------
def round_trip(conn: Any, resource: str):
    """``(connection, span)`` for one pipelined round trip of several statements (the batch
    writer's): the connection under ddtrace's wrapper, so its statements make no span each, and
    one ``postgres.query`` span for the whole round trip, named by ``resource`` (a fixed label,
    never a value). Off, the connection as it is and a no-op span."""
    tracer = _state.get("tracer")
    raw = getattr(conn, "__wrapped__", None)
    if tracer is None or not tracer.enabled or raw is None:
        return conn, contextlib.nullcontext()
    span = tracer.trace("postgres.query", span_type="sql", resource=resource)
    span.set_tag("span.kind", "client")
    span.set_tag("component", "tokenwatch")
    span.set_tag("db.system", "postgresql")
    return raw, span


# -- the request span ----------------------------------------------------------------------
class RequestSpans:
    """ASGI: one server span per HTTP request around ``app`` (the whole middleware stack)."""

    def __init__(self, app, router, service: str, tracer, request_logs: bool, version: str):
        self.app, self.router, self.service, self.tracer = app, router, service, tracer
        self.request_logs, self.version = request_logs, version

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        started = time.perf_counter()
        span = self.tracer.trace(SPAN_NAME, service=self.service, span_type="web")
        status = 500
        peek: list[bytes] = []

        async def send_(message):
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body" and status >= 400 \
                    and sum(map(len, peek)) < _ERROR_PEEK:
                peek.append(message.get("body", b"")[:_ERROR_PEEK])
            await send(message)

        failed: BaseException | None = None
        try:
            await self.app(scope, receive, send_)
        except BaseException as exc:
            failed = exc
            raise
        finally:
            route = self._route(scope)
            code = _error_code(b"".join(peek)) if status >= 400 else None
            span.resource = f"{method} {route}"
            span.set_tag("span.kind", "server")
            span.set_tag("version", self.version)  # ddtrace adds it only to DD_SERVICE's spans
            span.set_tag("component", "tokenwatch")
            span.set_tag("http.method", method)
            span.set_tag("http.route", route)
            span.set_tag("http.url", route)
            span.set_tag("http.status_code", str(status))
            if code:
                span.set_tag("tokenwatch.error_code", code)
            if status >= 500 or failed is not None:
                span.error = 1
                span.set_tag("error.type", code or (type(failed).__name__ if failed
                                                        else f"http_{status}"))
                span.set_tag("error.message", f"{status} {code or 'server error'}")
            if self.request_logs and requests_log.isEnabledFor(logging.INFO):
                requests_log.info("%s %s %s", method, route, status, extra={
                    "http.method": method, "http.route": route, "http.status_code": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "error_code": code})
            span.finish()

    def _route(self, scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if path:
            return path
        # refused before routing (401, 413): the template the path would have matched
        from starlette.routing import Match

        for candidate in self.router.routes:
            match, _ = candidate.matches(scope)
            if match is not Match.NONE and getattr(candidate, "path", None):
                return candidate.path
        return "unmatched"


def _error_code(body: bytes) -> str | None:
    """The ``error`` field of a JSON error answer, when it is a plain code."""
    try:
        value = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    if isinstance(value, str) and 0 < len(value) <= 64 and set(value) <= _CODE_CHARS:
        return value
    return None


# -- JSON log lines ------------------------------------------------------------------------
_EXTRA = ("http.method", "http.route", "http.status_code", "duration_ms", "error_code")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the active span's ids
    (``dd.trace_id``, ``dd.span_id``, ``dd.service``, ``dd.env``, ``dd.version``) and, on a
    request line, its method, route template, status, duration and error code."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        tracer = _state.get("tracer")
        if tracer is not None:
            line.update(tracer.get_log_correlation_context())
            root = tracer.current_root_span()
            if root is not None:  # the request's service (two apps may share a process)
                line["dd.service"] = root.service
        for key in _EXTRA:
            value = record.__dict__.get(key)
            if value is not None:
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # the exception's kind, never its message: that may hold a value
            line["error.kind"] = record.exc_info[0].__name__
        return json.dumps(line, separators=(",", ":"))

    converter = time.gmtime
