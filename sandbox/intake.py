"""A local Datadog intake: a small HTTP server that speaks the parts of Datadog's API that
tokenwatch uses, checks them as Datadog does, and records what it accepts.

Endpoints (all under the ``DD-API-KEY`` header; 403 without it or with a wrong one):

* ``POST /api/v1/series``  ``{"series": [{"metric", "points": [[ts, value]], ...}]}`` -> 202
* ``POST /api/v2/series``  ``{"series": [{"metric", "points": [{"timestamp", "value"}]}]}`` -> 202
* ``POST /api/v1/events``  ``{"title", "text", ...}`` -> 202
* ``POST|GET /api/v1/dashboard``, ``GET|PUT|DELETE /api/v1/dashboard/{id}`` -> 200
* ``POST|GET /api/v1/monitor``, ``GET|PUT|DELETE /api/v1/monitor/{id}`` -> 200
* ``GET /api/v1/validate`` -> 200 ``{"valid": true}``

A payload of the wrong shape gets 400 with ``{"errors": [reason]}``, as from Datadog. Every
accepted write is appended to a JSON-lines file (``read_records`` reads it back), so tests and
the demo can check exactly what reached "Datadog". Bodies may be deflate- or gzip-encoded.
On start the file is replayed: dashboards and monitors come back with their ids (series and
events stay records only), and new ids continue above every id issued before.

Run it as ``python -m sandbox.intake --records FILE --api-key KEY`` or in a thread
with ``IntakeThread``. The ``datadog`` package talks to it with ``api_host=<its url>``.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.server_thread import ServerThread

METRIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,199}")
V1_TYPES = {"gauge", "count", "rate"}
V2_TYPES = {0, 1, 2, 3}  # unspecified, count, rate, gauge
ALERT_TYPES = {"error", "warning", "info", "success", "user_update", "recommendation",
               "snapshot"}
MONITOR_TYPES = {"metric alert", "query alert", "service check", "event alert",
                 "event-v2 alert", "log alert", "composite", "process alert",
                 "trace-analytics alert", "slo alert", "rum alert", "ci-pipelines alert",
                 "audit alert"}
MAX_BODY = 5 * 1024 * 1024  # Datadog's limit for a series payload (uncompressed)
OBJECT_ROUTES = {"/api/v1/dashboard": "dashboard", "/api/v1/monitor": "monitor"}
FIRST_ID = {"dashboard": 1, "monitor": 1000}
BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


class Invalid(ValueError):
    """The payload does not have the shape Datadog expects; the message says where."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_tags(where: str, tags: Any) -> None:
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise Invalid(f"{where}.tags must be a list of strings")


def _check_metric_name(where: str, item: dict) -> None:
    name = item.get("metric")
    if not isinstance(name, str) or not name:
        raise Invalid(f"{where}.metric is required and must be a string")
    if not METRIC_NAME.fullmatch(name):
        raise Invalid(f"{where}.metric {name[:210]!r} is not a valid metric name: it must start "
                      "with a letter, contain only ASCII letters, digits, '_' and '.', and be "
                      "at most 200 characters")


def _series_items(body: Any) -> list:
    if not isinstance(body, dict) or not isinstance(body.get("series"), list):
        raise Invalid('payload must be an object with a "series" list')
    if not body["series"]:
        raise Invalid('"series" is empty')
    for i, item in enumerate(body["series"]):
        if not isinstance(item, dict):
            raise Invalid(f"series[{i}] must be an object")
    return body["series"]


def validate_series_v1(body: Any) -> int:
    """Check a v1 series payload; return the number of points."""
    points = 0
    for i, item in enumerate(_series_items(body)):
        where = f"series[{i}]"
        _check_metric_name(where, item)
        if not isinstance(item.get("points"), list) or not item["points"]:
            raise Invalid(f"{where}.points must be a non-empty list of [timestamp, value]")
        for j, point in enumerate(item["points"]):
            if not (isinstance(point, list) and len(point) == 2
                    and _is_number(point[0]) and _is_number(point[1])):
                raise Invalid(f"{where}.points[{j}] must be [timestamp, value] with numbers, "
                              f"got {json.dumps(point)[:80]}")
        if "type" in item and item["type"] not in V1_TYPES:
            raise Invalid(f"{where}.type must be one of {sorted(V1_TYPES)}")
        _check_tags(where, item.get("tags"))
        if "host" in item and not isinstance(item["host"], str | type(None)):
            raise Invalid(f"{where}.host must be a string")
        points += len(item["points"])
    return points


def validate_series_v2(body: Any) -> int:
    """Check a v2 series payload; return the number of points."""
    points = 0
    for i, item in enumerate(_series_items(body)):
        where = f"series[{i}]"
        _check_metric_name(where, item)
        if not isinstance(item.get("points"), list) or not item["points"]:
            raise Invalid(f"{where}.points must be a non-empty list of {{timestamp, value}}")
        for j, point in enumerate(item["points"]):
            if not (isinstance(point, dict) and isinstance(point.get("timestamp"), int)
                    and not isinstance(point.get("timestamp"), bool)
                    and _is_number(point.get("value"))):
                raise Invalid(f"{where}.points[{j}] must be {{\"timestamp\": int, \"value\": "
                              f"number}}, got {json.dumps(point)[:80]}")
        if "type" in item and item["type"] not in V2_TYPES:
            raise Invalid(f"{where}.type must be one of 0, 1, 2, 3")
        _check_tags(where, item.get("tags"))
        resources = item.get("resources")
        if resources is not None and not (isinstance(resources, list) and all(
                isinstance(r, dict) and isinstance(r.get("name"), str) for r in resources)):
            raise Invalid(f"{where}.resources must be a list of {{name, type}}")
        points += len(item["points"])
    return points


def validate_event(body: Any) -> None:
    if not isinstance(body, dict):
        raise Invalid("event must be an object")
    for field, limit in (("title", 100), ("text", 4000)):
        if not isinstance(body.get(field), str) or not body[field]:
            raise Invalid(f"event.{field} is required and must be a non-empty string")
        if len(body[field]) > limit:
            raise Invalid(f"event.{field} is longer than {limit} characters")
    if "alert_type" in body and body["alert_type"] not in ALERT_TYPES:
        raise Invalid(f"event.alert_type must be one of {sorted(ALERT_TYPES)}")
    _check_tags("event", body.get("tags"))
    if "date_happened" in body and not isinstance(body["date_happened"], int):
        raise Invalid("event.date_happened must be an integer timestamp")


def validate_dashboard(body: Any) -> None:
    if not isinstance(body, dict):
        raise Invalid("dashboard must be an object")
    if not isinstance(body.get("title"), str) or not body["title"]:
        raise Invalid("dashboard.title is required")
    if body.get("layout_type") not in ("ordered", "free"):
        raise Invalid("dashboard.layout_type must be 'ordered' or 'free'")
    widgets = body.get("widgets")
    if not isinstance(widgets, list) or not all(
            isinstance(w, dict) and isinstance(w.get("definition"), dict)
            and isinstance(w["definition"].get("type"), str) for w in widgets):
        raise Invalid("dashboard.widgets must be a list of {definition: {type, ...}}")


def validate_monitor(body: Any) -> None:
    if not isinstance(body, dict):
        raise Invalid("monitor must be an object")
    if body.get("type") not in MONITOR_TYPES:
        raise Invalid(f"monitor.type must be one of {sorted(MONITOR_TYPES)}")
    for field in ("query", "name"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise Invalid(f"monitor.{field} is required and must be a non-empty string")
    _check_tags("monitor", body.get("tags"))
    if "options" in body and not isinstance(body["options"], dict):
        raise Invalid("monitor.options must be an object")


def dashboard_id(number: int) -> str:
    """Dashboard ``number`` as an id of Datadog's shape (``abc-def-ghi``): nine base-36
    digits, so that ids sort as their numbers do."""
    digits = ""
    for _ in range(9):
        number, digit = divmod(number, 36)
        digits = BASE36[digit] + digits
    return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"


def _id_number(kind: str, ident: Any) -> int | None:
    """The number behind an id (older records hold random hex dashboard ids: base 36 too)."""
    if kind == "monitor":
        return ident if isinstance(ident, int) and not isinstance(ident, bool) else None
    digits = ident.replace("-", "") if isinstance(ident, str) else ""
    if len(digits) != 9 or any(c not in BASE36 for c in digits):
        return None
    return int(digits, 36)


class Intake:
    """The intake's state: the records file, and the dashboards and monitors it holds."""

    def __init__(self, records: Path, api_key: str | None = None):
        self.records = Path(records)
        self.records.parent.mkdir(parents=True, exist_ok=True)
        self.records.touch()
        drop_torn_tail(self.records)
        self.api_key = api_key
        self._lock = threading.RLock()  # held across applying a write and recording it
        self.dashboards: dict[str, dict] = {}
        self.monitors: dict[int, dict] = {}
        self._next = dict(FIRST_ID)  # kind -> the number of the next id to issue
        self._replay()

    def _replay(self) -> None:
        """Rebuild dashboards and monitors from the records, so a restart keeps them. Series
        and events are recorded data, not objects: they are left as they are. Every id ever
        issued (deleted objects' too) moves the next id past it, so no id is issued twice."""
        for rec in read_records(self.records):
            if rec.get("path") in OBJECT_ROUTES and rec.get("id") is not None:
                self._apply(rec["method"], rec["path"], rec.get("body"), rec["id"])

    def _apply(self, method: str, route: str, body: Any, ident: Any) -> Any:
        kind = OBJECT_ROUTES[route]
        store: dict[Any, dict] = self.dashboards if kind == "dashboard" else self.monitors
        number = _id_number(kind, ident)
        if number is not None:
            self._next[kind] = max(self._next[kind], number + 1)
        if method == "DELETE":
            return store.pop(ident, None)
        obj = dict(body, id=ident)
        if kind == "dashboard":
            obj["url"] = f"/dashboard/{ident}"
        store[ident] = obj
        return obj

    def _new_id(self, kind: str) -> str | int:
        number = self._next[kind]
        return dashboard_id(number) if kind == "dashboard" else number

    def record(self, method: str, path: str, body: Any, **extra: Any) -> None:
        line = json.dumps({"received_at": time.time(), "method": method, "path": path,
                           "body": body, **extra}, separators=(",", ":"))
        with self._lock, self.records.open("a") as fh:
            fh.write(line + "\n")

    def handle(self, method: str, path: str, headers: dict, body: Any) -> tuple[int, Any]:
        key = headers.get("dd-api-key")
        if not key or (self.api_key and key != self.api_key):
            return 403, {"errors": ["Forbidden"]}
        parts = path.rstrip("/").split("/")
        route = "/".join(parts[:4])
        try:
            if route == "/api/v1/validate" and method == "GET":
                return 200, {"valid": True}
            if route in ("/api/v1/series", "/api/v2/series") and method == "POST":
                check = validate_series_v1 if route == "/api/v1/series" else validate_series_v2
                points = check(body)
                self.record(method, route, body, points=points)
                return 202, ({"status": "ok"} if route == "/api/v1/series" else {"errors": []})
            if route == "/api/v1/events" and method == "POST":
                validate_event(body)
                ident = uuid.uuid4().int >> 80
                self.record(method, route, body, id=ident)
                return 202, {"status": "ok", "event": dict(body, id=ident)}
            if route in ("/api/v1/dashboard", "/api/v1/monitor"):
                return self._objects(method, route, parts[4] if len(parts) > 4 else None, body)
        except Invalid as exc:
            return 400, {"errors": [str(exc)]}
        return 404, {"errors": [f"no such endpoint: {method} {path}"]}

    def _objects(self, method: str, route: str, ident: str | None, body: Any) -> tuple[int, Any]:
        dashboards = route.endswith("dashboard")
        store = self.dashboards if dashboards else self.monitors
        validate = validate_dashboard if dashboards else validate_monitor
        if ident is None:
            if method == "GET":
                items = list(store.values())
                return 200, ({"dashboards": items} if dashboards else items)
            if method == "POST":
                validate(body)
                with self._lock:  # the records file holds the writes in the order applied
                    new_id = self._new_id(OBJECT_ROUTES[route])
                    obj = self._apply("POST", route, body, new_id)
                    self.record("POST", route, body, id=new_id)
                return 200, obj
            return 405, {"errors": [f"{method} not allowed on {route}"]}
        key: Any = ident if dashboards else (int(ident) if ident.isdigit() else ident)
        if method not in ("GET", "PUT", "DELETE"):
            return 405, {"errors": [f"{method} not allowed on {route}/{ident}"]}
        with self._lock:  # found and changed in one step: no update resurrects a deleted one
            if key not in store:
                return 404, {"errors": [f"{route.rsplit('/', 1)[1]} {ident} not found"]}
            if method == "GET":
                return 200, store[key]
            if method == "PUT":
                validate(body)
                obj = self._apply("PUT", route, body, key)
                self.record("PUT", route, body, id=key)
                return 200, obj
            self._apply("DELETE", route, None, key)
            self.record("DELETE", route, None, id=key)
        gone = "deleted_dashboard_id" if dashboards else "deleted_monitor_id"
        return 200, {gone: key}


def drop_torn_tail(path: Path) -> int:
    """Cut a last line that a killed intake left half-written (no newline), so a restart
    neither trips over it nor glues the next record to it. That write was never answered, so
    nothing accepted is lost. Returns the bytes cut."""
    with path.open("rb+") as fh:
        size = fh.seek(0, 2)
        if size == 0:
            return 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        keep = size
        while keep > 0:  # back to the last complete line
            step = min(keep, 65536)
            fh.seek(keep - step)
            at = fh.read(step).rfind(b"\n")
            if at >= 0:
                keep = keep - step + at + 1
                break
            keep -= step
        fh.truncate(keep)
        return size - keep


def read_records(path: Path, route: str | None = None) -> list[dict]:
    """The accepted payloads, oldest first; only those sent to ``route`` when given."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    with path.open() as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                if route is None or rec["path"] == route:
                    out.append(rec)
    return out


def _handler(intake: Intake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tokenwatch-intake/1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return None

        def _respond(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise Invalid(f"payload of {length} bytes is over the {MAX_BODY}-byte limit")
            raw = self.rfile.read(length) if length else b""
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            try:
                if encoding == "deflate":
                    raw = zlib.decompress(raw)
                elif encoding == "gzip":
                    raw = zlib.decompress(raw, zlib.MAX_WBITS | 16)
            except zlib.error as exc:
                raise Invalid(f"body is not valid {encoding}: {exc}") from exc
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError as exc:
                raise Invalid(f"body is not valid JSON: {exc}") from exc

        def _serve(self) -> None:
            url = urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            if "api_key" in parse_qs(url.query) and "dd-api-key" not in headers:
                headers["dd-api-key"] = parse_qs(url.query)["api_key"][0]
            try:
                body = self._body()
            except Invalid as exc:
                self._respond(400, {"errors": [str(exc)]})
                return
            try:
                status, payload = intake.handle(self.command, url.path, headers, body)
            except Exception as exc:  # noqa: BLE001 - an intake bug must answer, not hang
                status, payload = 500, {"errors": [f"intake error: {exc!r}"]}
            self._respond(status, payload)

        do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815

    return Handler


def make_server(records: Path, api_key: str | None = None, host: str = "127.0.0.1",
                port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _handler(Intake(records, api_key)))
    server.daemon_threads = True
    return server


class IntakeThread(ServerThread):
    """The intake in a background thread: ``with IntakeThread(path, key) as intake: intake.url``."""

    def __init__(self, records: Path, api_key: str | None = None):
        self.records = Path(records)
        super().__init__(make_server(self.records, api_key))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the bound port here")
    parser.add_argument("--records", type=Path, required=True, help="JSON-lines record file")
    parser.add_argument("--api-key", default=None, help="the only key accepted (default: any)")
    args = parser.parse_args(argv)
    server = make_server(args.records, args.api_key, args.host, args.port)
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(str(server.server_address[1]))
        tmp.replace(args.port_file)
    print(f"datadog intake on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
