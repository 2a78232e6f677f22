"""The reports API (FastAPI): the semantic layer's metrics, queried by any dimension and grain,
and a token's timeline. The contract is its ``/openapi.json`` (and the README's analysts'
section).

Every answer of a query says how fresh its data is and which days it covers passed the quality
gate. Rows grouped by ``metric_time`` carry a ``gate_status`` column: at hour and day grain the
verdict of the row's day; at week, month, quarter and year the worst verdict of the days of that
period that have data (``unchecked`` > ``passed``). A day the gate withheld is left out of
every answer (write-audit-publish, as ``analytics_published`` and the Tableau extracts leave it
out): its rows are not there and no total or ratio counts it; the envelope names it in
``withheld_days``, so a missing day is explained, and it comes back once fixed and re-gated.
The envelope (JSON fields; CSV, Parquet and PNG: ``X-Tokenwatch-*`` headers, Parquet also
schema metadata) lists every covered day with its verdict; a query not grouped by time covers
every day its metrics have data for.
"""

# (no `from __future__ import annotations`: FastAPI reads the routes' annotations, which
# name this function's locals such as max_rows)
import dataclasses
import functools
import logging
import time
import uuid
from collections.abc import Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from quality import verdicts
from reporting import semantic
from reporting.api import formats, pagination, query_params, schemas
from reporting.api.access_log import AccessEntry, AccessLog, query_text
from reporting.api.auth import Keys
from reporting.api.gate import GateStatus, worst
from reporting.api.readers import QueryTimeout, Reader, WarehouseUnavailable
from reporting.api.timeline import StateSource, timeline
from state_service.schemas import IDENTIFIER, no_pan
from tokenwatch import tracing

log = logging.getLogger("tokenwatch.reports")
OPEN_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect"})
#: The days a query not grouped by day may cover, at most (the covered days are looked up).
MAX_COVERED_DAYS = 100_000
DEFAULT_PAGE = 1000

_bearer = HTTPBearer(auto_error=False, description="A report key (TOKENWATCH_REPORT_KEYS)")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False,
                        description="A report key (TOKENWATCH_REPORT_KEYS), instead of a bearer")


async def _documents_keys(bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
                          api_key: str | None = Security(_api_key)) -> None:
    """OpenAPI only: the operation takes a report key (the front door checks it)."""


class LimitTooLarge(ValueError):
    def __init__(self, limit: int, most: int):
        self.most = most
        super().__init__(f"limit {limit} is above the most rows one page may hold ({most}, "
                         "TOKENWATCH_REPORTS_MAX_ROWS): ask for fewer and follow next_cursor")


def _error(status: int, error: str, message: str, **extra) -> JSONResponse:
    body = {"error": error, "message": message} | {k: v for k, v in extra.items()
                                                   if v is not None}
    return JSONResponse(body, status_code=status)


def _period_end(start: date, grain: str) -> date:
    if grain == "week":
        return start + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[grain]
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1)


def create_app(*, reader: Reader, layer: semantic.SemanticLayer, keys: Mapping[str, str],
               state: StateSource | None = None, access_log: AccessLog | None = None,
               max_rows: int = 10_000, status_ttl_s: float = 5.0) -> FastAPI:
    """The API over ``reader`` (where the marts are) and ``state`` (the state service's
    database, for timelines). ``keys``: {name: key}; ``access_log`` gets one row a request."""
    if max_rows < 1:
        raise ValueError(f"TOKENWATCH_REPORTS_MAX_ROWS must be at least 1, got {max_rows}")
    guard = Keys(keys)
    gate = GateStatus(reader, ttl_s=status_ttl_s)
    default_limit = min(DEFAULT_PAGE, max_rows)

    @functools.lru_cache(maxsize=4096)
    def compiled_page(query: semantic.Query, limit: int, offset: int) -> semantic.Compiled:
        """The SQL of one page (resolving names costs MetricFlow a millisecond each time)."""
        return layer.compile(query, limit=limit, offset=offset)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if not guard:
            log.warning("TOKENWATCH_REPORT_KEYS is empty: every report request is refused")
        if access_log is not None:
            access_log.start()
        try:
            yield
        finally:
            if access_log is not None:
                access_log.close()  # writes what is left
            if state is not None:
                state.close()
            reader.close()

    app = FastAPI(title="tokenwatch reports", version="1", lifespan=lifespan,
                  description=DESCRIPTION.format(max_rows=max_rows, page=default_limit,
                                                 timeout=reader.timeout_s),
                  telemetry=tracing.FASTAPI_TELEMETRY_OFF)
    tracing.instrument(app, tracing.REPORTS_SERVICE)  # off unless DD_TRACE_ENABLED (README)

    # -- the front door: keys and the access log ---------------------------------------
    @app.middleware("http")
    async def front_door(request: Request, call_next):
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        arrived = datetime.now(UTC).replace(tzinfo=None)
        who, ok = guard.who(request.headers)
        state_ = request.state
        state_.rows, state_.metrics, state_.body = 0, "", None
        status = 500
        try:
            if request.url.path in OPEN_PATHS or ok:
                response = await call_next(request)
            else:
                response = JSONResponse(
                    {"error": "unauthorized", "message": "send 'Authorization: Bearer <key>' "
                     "or 'X-API-Key: <key>' with a valid report key (TOKENWATCH_REPORT_KEYS)"},
                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
            status = response.status_code
            response.headers["X-Request-Id"] = request_id
            return response
        finally:
            if access_log is not None:
                params: dict = {}
                for key, value in request.query_params.multi_items():
                    params.setdefault(key, []).append(value)
                params = {k: v[0] if len(v) == 1 else v for k, v in params.items()}
                if state_.body is not None:
                    params["body"] = state_.body
                access_log.record(AccessEntry(
                    request_id=request_id, requested_at=arrived, who=who,
                    method=request.method, path=query_text_path(request.url.path),
                    query=query_text(params) if params else "", metrics=state_.metrics,
                    status=status, rows_returned=int(state_.rows or 0) if status < 400 else 0,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    response_format=(response.headers.get("content-type", "")
                                     if status != 500 else "")[:100]))

    # -- errors: clear 4xx naming what would do ----------------------------------------
    @app.exception_handler(semantic.SemanticError)
    async def _on_semantic(request: Request, exc: semantic.SemanticError):
        error = f"unknown_{exc.kind.replace(' ', '_')}" if exc.allowed else "invalid_query"
        return _error(400, error, str(exc), kind=exc.kind, name=exc.name,
                      allowed=exc.allowed or None)

    @app.exception_handler(pagination.BadCursor)
    async def _on_cursor(request: Request, exc: pagination.BadCursor):
        return _error(400, "bad_cursor", str(exc))

    @app.exception_handler(LimitTooLarge)
    async def _on_limit(request: Request, exc: LimitTooLarge):
        return _error(400, "limit_too_large", str(exc), max=exc.most)

    @app.exception_handler(formats.NotAcceptable)
    async def _on_accept(request: Request, exc: formats.NotAcceptable):
        return _error(406, "not_acceptable", str(exc), allowed=list(formats.MEDIA_TYPES))

    @app.exception_handler(QueryTimeout)
    async def _on_timeout(request: Request, exc: QueryTimeout):
        return _error(504, "query_timeout",
                      f"the query ran longer than {reader.timeout_s:g} s (TOKENWATCH_REPORTS_"
                      "QUERY_TIMEOUT_S) and was stopped: ask for fewer metrics or dimensions, "
                      "a coarser grain or a shorter start..end")

    @app.exception_handler(WarehouseUnavailable)
    async def _on_unavailable(request: Request, exc: WarehouseUnavailable):
        log.warning("reports: %s", exc)
        return _error(503, "warehouse_unavailable", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(request: Request, exc: RequestValidationError):
        fields = [{"field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]),
                   "message": str(e["msg"]).removeprefix("Value error, ")}
                  for e in exc.errors()]  # never the input: it may be a card number
        limit = next((e for e in exc.errors() if e["loc"][-1:] == ("limit",)
                      and e["type"] == "less_than_equal"), None)
        if limit is not None:
            return _error(400, "limit_too_large",
                          f"limit is above the most rows one page may hold ({max_rows}, "
                          "TOKENWATCH_REPORTS_MAX_ROWS): ask for fewer and follow next_cursor",
                          max=max_rows)
        return _error(400, "invalid_request",
                      "; ".join(f"{f['field']}: {f['message']}" for f in fields), fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException):
        names = {404: "not_found", 405: "method_not_allowed"}
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path (GET and POST /v1/query)
            methods = {m for route in app.routes if getattr(route, "methods", None)
                       and route.matches(request.scope)[0] != Match.NONE
                       for m in route.methods}
            headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse({"error": names.get(exc.status_code, "error"),
                             "message": str(exc.detail)}, status_code=exc.status_code,
                            headers=headers)

    # -- answering a query ---------------------------------------------------------------
    def covered_days(query: semantic.Query) -> list[date]:
        """The days the query's metrics have data for, under its filters and range."""
        daily = semantic.Query(metrics=query.metrics, group_by=("metric_time",), grain="day",
                               where=query.where, start=query.start, end=query.end)
        compiled = compiled_page(daily, MAX_COVERED_DAYS, 0)
        _, rows = reader.fetch(compiled.sql)
        index = compiled.columns.index(compiled.time_column)
        return sorted({formats.day_of(row[index]) for row in rows
                       if row[index] is not None})

    def withheld_in(query: semantic.Query) -> list[date]:
        """The days the gate withheld (latest verdict) within the query's start..end."""
        return sorted(d for d, v in gate.snapshot().verdicts.items()
                      if v.status == verdicts.WITHHELD
                      and (query.start is None or d >= query.start)
                      and (query.end is None or d < query.end))

    def answer(request: Request, query: semantic.Query, limit: int | None, cursor: str | None,
               accept: str | None) -> Response:
        fmt = formats.negotiate(accept)
        withheld = withheld_in(query)
        if withheld:  # left out: no row of theirs, and no total or ratio counts them
            query = dataclasses.replace(query, where=(*query.where, semantic.Filter(
                "metric_time", "not in", tuple(d.isoformat() for d in withheld))))
        request.state.metrics = ",".join(query.metrics)[:1000]
        limit = limit or default_limit
        if limit > max_rows:
            raise LimitTooLarge(limit, max_rows)
        signature = query.signature()
        offset = pagination.decode(cursor, signature) if cursor else 0
        compiled = compiled_page(query, limit + 1, offset)
        _, raw = reader.fetch(compiled.sql)
        more, raw = len(raw) > limit, raw[:limit]
        time_col = compiled.time_column
        grain = time_col.split("__", 1)[1] if time_col else None
        rows = formats.normalise(compiled.columns, raw, time_col, grain or "day")
        columns = list(compiled.columns)
        if time_col:
            ti = columns.index(time_col)
            if grain in ("hour", "day"):
                row_days = [[formats.day_of(row[ti])] if row[ti] is not None else []
                            for row in rows]
            else:
                data = covered_days(query)
                row_days = []
                for row in rows:
                    begin = row[ti]
                    end = _period_end(begin, grain) if begin else None
                    row_days.append([d for d in data if begin and begin <= d < end])
            found = gate.days({d for days in row_days for d in days})
            for row, days in zip(rows, row_days, strict=True):
                row.append(worst(found[d].status for d in days) or verdicts.UNCHECKED)
            columns.append("gate_status")
        else:
            found = gate.days(covered_days(query))
        statuses = [v.status for v in found.values()]
        gate_info = {"status": worst(statuses),
                     "days": [v.as_dict() for v in found.values()],
                     "withheld_days": [d.isoformat() for d in withheld],
                     "unchecked_days": [d.isoformat() for d, v in found.items()
                                        if v.status == verdicts.UNCHECKED],
                     "published": bool(statuses) and set(statuses) == {verdicts.PASSED}}
        freshness = gate.freshness()
        next_cursor = pagination.encode(signature, offset + limit) if more else None
        request.state.rows = len(rows)
        headers = formats.headers(freshness, gate_info, next_cursor)
        units = {m: layer.metric(m).unit for m in query.metrics}
        asked = {"metrics": list(query.metrics), "group_by": list(query.group_by),
                 "grain": query.grain,
                 "where": [{"dimension": f.dimension, "op": f.op, "value": f.value}
                           for f in query.where],
                 "order_by": list(query.order_by),
                 "start": query.start.isoformat() if query.start else None,
                 "end": query.end.isoformat() if query.end else None}
        if fmt == formats.CSV:
            return Response(formats.to_csv(columns, rows), media_type="text/csv",
                            headers=headers)
        if fmt == formats.PARQUET:
            body = formats.to_parquet(columns, rows, {
                "query": asked, "freshness": freshness.as_dict(), "gate": gate_info,
                "next_cursor": next_cursor, "units": units},
                instant_column=time_col if grain == "hour" else None)
            return Response(body, media_type=formats.PARQUET, headers=headers)
        if fmt == formats.PNG:
            from reporting.charts.rows import chart_for_rows

            width = len(compiled.columns)
            title = ", ".join(query.metrics)
            if gate_info["withheld_days"]:
                title += f" (withheld by the gate: {', '.join(gate_info['withheld_days'])})"
            try:
                png = chart_for_rows(list(compiled.columns),
                                     [tuple(formats.plain(v) for v in row[:width])
                                      for row in rows], metric_units=units, title=title)
            except ValueError as error:
                return _error(400, "nothing_to_chart", str(error))
            return Response(png, media_type=formats.PNG, headers=headers)
        body = {"query": asked, "columns": columns,
                "rows": [{c: formats.plain(v) for c, v in zip(columns, row, strict=True)}
                         for row in rows],
                "row_count": len(rows), "limit": limit, "offset": offset,
                "next_cursor": next_cursor, "units": units,
                "freshness": freshness.as_dict(), "gate": gate_info}
        return JSONResponse(body, headers=headers)

    # -- routes ----------------------------------------------------------------------------
    secured = [Depends(_documents_keys)]
    errors = {400: {"model": schemas.ErrorBody,
                    "description": "Unknown metric, dimension, grain, operator or order, a bad "
                                   "cursor, date or limit: the body names what would do"},
              401: {"model": schemas.ErrorBody, "description": "No key or an unknown key"},
              503: {"model": schemas.ErrorBody, "description": "The warehouse cannot answer"}}
    query_errors = errors | {
        406: {"model": schemas.ErrorBody, "description": "An Accept this API cannot answer"},
        504: {"model": schemas.ErrorBody, "description": "The query ran past the timeout"}}
    query_ok = {200: {"model": schemas.QueryAnswer, "description": (
        "One page of the answer. JSON by default; `Accept: text/csv`, "
        "`application/vnd.apache.parquet` (or `application/x-parquet`) or `image/png` for the "
        "others, with the freshness and the gate's verdicts in `X-Tokenwatch-*` headers"),
        "content": {"text/csv": {"schema": {"type": "string"}},
                    formats.PARQUET: {"schema": {"type": "string", "format": "binary"}},
                    "image/png": {"schema": {"type": "string", "format": "binary"}}}}}

    @app.get("/healthz", response_model=schemas.Health, operation_id="healthz")
    def healthz():
        """Liveness. Needs no key; holds no data."""
        return {"status": "ok", "engine": reader.engine}

    @app.get("/v1/metrics", response_model=schemas.MetricList, operation_id="list_metrics",
             dependencies=secured, responses={401: errors[401]})
    def list_metrics(request: Request):
        """Every metric: description, unit, dimensions and grains."""
        found = [m.as_dict() for m in layer.metrics().values()]
        request.state.rows = len(found)
        return {"metrics": found}

    @app.get("/v1/metrics/{name}", response_model=schemas.Metric, operation_id="get_metric",
             dependencies=secured, responses={
                 401: errors[401], 400: errors[400],
                 404: {"model": schemas.ErrorBody,
                       "description": "No such metric; `allowed` lists them"}})
    def get_metric(request: Request, name: Annotated[str, Path(max_length=200)]):
        """One metric: description, unit, dimensions and grains."""
        try:
            info = layer.metric(name)
        except semantic.SemanticError as exc:
            return _error(404, "unknown_metric", str(exc), kind="metric", name=name,
                          allowed=exc.allowed)
        request.state.metrics, request.state.rows = name, 1
        return info.as_dict()

    body_model = create_model("QueryBody", __base__=query_params.QueryBody,
                              limit=(int | None, Field(default=None, ge=1, le=max_rows)))

    @app.get("/v1/query", operation_id="get_query", dependencies=secured,
             response_model=None, responses=query_ok | query_errors)
    def get_query(
        request: Request,
        metrics: Annotated[str, Query(min_length=1, max_length=2000, description=(
            "comma-separated metric names (`GET /v1/metrics`)"), examples=["api_requests"])],
        group_by: Annotated[str | None, Query(max_length=2000, description=(
            "comma-separated dimensions and/or `metric_time` (at `grain`; or "
            "`metric_time__<grain>`)"), examples=["wallet,metric_time"])] = None,
        grain: Annotated[query_params.Grain, Query(description="the grain of metric_time")
                         ] = "day",
        where: Annotated[list[str] | None, Query(max_length=50, description=(
            "`<dimension>:<operator>:<value>`, repeated (all must hold); operators `=`, `!=`, "
            "`>`, `>=`, `<`, `<=`, `in`, `not_in`; `in`/`not_in` values separated by `|`: "
            "`where=wallet:in:apple_pay|google_pay&where=network:=:visa`"))] = None,
        order_by: Annotated[str | None, Query(max_length=2000, description=(
            "comma-separated output columns, `-` first for descending"),
            examples=["-api_requests"])] = None,
        limit: Annotated[int | None, Query(ge=1, le=max_rows, description=(
            f"rows a page (default {default_limit}, at most {max_rows})"))] = None,
        cursor: Annotated[str | None, Query(max_length=1000, description=(
            "`next_cursor` of the previous page, with the same query"))] = None,
        start: Annotated[date | None, Query(description="metric_time >= this day")] = None,
        end: Annotated[date | None, Query(description="metric_time < this day")] = None,
        accept: Annotated[str | None, Header(include_in_schema=False)] = None,
    ):
        """Metrics by dimensions and metric_time, filtered, ordered, one page at a time."""
        query = query_params.from_url(metrics, group_by, grain, where or [], order_by,
                                      start, end)
        return answer(request, query, limit, cursor, accept)

    @app.post("/v1/query", operation_id="post_query", dependencies=secured,
              response_model=None, responses=query_ok | query_errors)
    def post_query(request: Request, body: body_model,  # type: ignore[valid-type]
                   accept: Annotated[str | None, Header(include_in_schema=False)] = None):
        """The same query as the GET, as a JSON body (``where``: a list of conditions)."""
        request.state.body = body.model_dump(mode="json", exclude_none=True)
        return answer(request, query_params.from_body(body), body.limit, body.cursor, accept)

    @app.get("/v1/tokens/{token_ref}/timeline", response_model=schemas.Timeline,
             operation_id="get_timeline", dependencies=secured, responses=errors | {
                 404: {"model": schemas.ErrorBody, "description": "No such token"},
                 504: query_errors[504]})
    def get_timeline(request: Request, token_ref: Annotated[
            str, Path(pattern=IDENTIFIER), AfterValidator(no_pan)]):
        """A token's live state and history (state service) with its spans and wallet events
        (warehouse), merged in time."""
        if state is None:
            raise WarehouseUnavailable("timelines need the state service's database "
                                       "(TOKENWATCH_READER_PG_DSN or TOKENWATCH_PG_DSN)")
        found = timeline(state, reader, token_ref, max_events=max_rows)
        if found is None:
            return _error(404, "not_found", "no such token in the state service or the "
                          "warehouse")
        request.state.rows = len(found["timeline"])
        return found | {"freshness": gate.freshness().as_dict()}

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)  # validation is a 400
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def query_text_path(path: str) -> str:
    from tokenwatch import pan

    return pan.redact(path)[:1000]


DESCRIPTION = """Query the warehouse's metrics (dbt's semantic layer) by any dimension and grain,
and read a token's timeline.

Every operation but `/healthz`, `/openapi.json` and `/docs` needs a report key
(`TOKENWATCH_REPORT_KEYS`) as `Authorization: Bearer <key>` or `X-API-Key: <key>`; every
request is written to the access log. A page holds at most {max_rows} rows (default {page});
a query runs at most {timeout:g} s (504 beyond).

Every query answer carries the data's freshness and, for each day it covers, the quality gate's
verdict (`passed`, `unchecked`): rows grouped by metric_time have a `gate_status` column. A day
the quality gate withheld is left out of every answer (no row, no total counts it) and named in
`gate.withheld_days`; it comes back once fixed and re-gated."""
