"""The state service's HTTP API (FastAPI). The contract is in the README and /openapi.json."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import asynccontextmanager
from typing import Annotated

import orjson
import psycopg
from fastapi import Depends, FastAPI, Path, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from pydantic import AfterValidator, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from state_service import lifecycle
from state_service.auth_failures import AuthFailures
from state_service.batch_writer import BatchWriter, Item
from state_service.fast_path import WriteFastPath
from state_service.group_commit import GroupCommit
from state_service.guard import Guard
from state_service.metrics import RequestTiming, ServiceMetrics
from state_service.migrate import migrate
from state_service.schemas import (
    IDENTIFIER,
    BatchCreate,
    BatchRequest,
    BatchResponse,
    BatchTransition,
    CreateToken,
    ErrorBody,
    Health,
    IllegalTransition,
    InvalidRequest,
    TokenDetail,
    TokenState,
    TransitionRequest,
    no_pan,
)
from state_service.store import (
    DatabaseUnavailable,
    IllegalTransitionError,
    Outcome,
    StoreError,
    TransitionStore,
)
from tokenwatch import config, tracing

log = logging.getLogger("tokenwatch.state_service")


class FastJSON(Response):
    """A JSON answer serialised by orjson (the write path's bodies are plain dicts)."""

    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content)
TokenRefPath = Annotated[str, Path(pattern=IDENTIFIER), AfterValidator(no_pan)]
#: Documents the bearer scheme in the OpenAPI; the check itself runs in ``guard.Guard``, before
#: the body is read.
_bearer = HTTPBearer(auto_error=False, description=(
    "A write key (TOKENWATCH_API_KEYS) for writes; a read key (TOKENWATCH_READ_KEYS) or a "
    "write key for reads."))


async def _documents_bearer(
        creds: HTTPAuthorizationCredentials | None = Security(_bearer)) -> None:
    """OpenAPI only: states that the operation takes a bearer key (the Guard enforces it)."""


def create_app(dsn: str, api_keys: Iterable[str] | None = None,
               metrics: ServiceMetrics | None = None, pool_size: int | None = None,
               run_migrations: bool = True, read_keys: Iterable[str] | None = None,
               max_body_bytes: int | None = None, fast_path: bool = True) -> FastAPI:
    """Build the service for the database at ``dsn``. Keys default to TOKENWATCH_API_KEYS
    (write) and TOKENWATCH_READ_KEYS (read), the body limit to TOKENWATCH_MAX_BODY_BYTES.
    ``fast_path=False`` leaves every request to FastAPI (state_service/fast_path.py)."""
    keys = tuple(api_keys if api_keys is not None else config.api_keys())
    readers = tuple(read_keys if read_keys is not None else config.read_keys())
    limit = max_body_bytes or config.max_body_bytes()
    metrics = metrics or ServiceMetrics.from_env()
    pool_size = pool_size or config.service_pool_size()
    pool = AsyncConnectionPool(dsn, min_size=min(2, pool_size), max_size=pool_size,
                               open=False, timeout=5, reconnect_timeout=0, name="tokenwatch-state",
                               # the writes BEGIN/COMMIT themselves; their statements are
                               # PREPAREd by the store (psycopg's own would DEALLOCATE ALL
                               # on every ROLLBACK, taking the store's with them)
                               kwargs={"autocommit": True, "prepare_threshold": None})
    store = TransitionStore(pool)
    batches = BatchWriter(store)
    writes = GroupCommit(store, batches, config.service_write_groups())
    # the refused-requests recorder writes from a thread of its own, through a pool of its own
    refused_pool = ConnectionPool(dsn, min_size=1, max_size=2, open=False, timeout=5,
                                  reconnect_timeout=0, name="tokenwatch-state-refused")
    refused = AuthFailures(refused_pool)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if not keys:
            log.warning("TOKENWATCH_API_KEYS is empty: every write will be refused with 401")
        if run_migrations:
            try:
                migrate(dsn)
            except Exception as exc:  # noqa: BLE001 - the service still starts; /healthz reports the database
                log.error("migrations could not run: %s", exc.__class__.__name__)
        await pool.open(wait=False)
        refused_pool.open(wait=False)
        refused.start()
        yield
        refused.close()  # writes the refused requests still counted
        refused_pool.close()
        await pool.close()
        metrics.close()

    app = FastAPI(title="tokenwatch state service", version="1", lifespan=lifespan,
                  description=DESCRIPTION.format(limit=limit),
                  telemetry=tracing.FASTAPI_TELEMETRY_OFF)
    tracing.instrument(app, tracing.STATE_SERVICE)  # off unless DD_TRACE_ENABLED (README)
    app.state.store = store
    app.state.writes = writes
    app.state.auth_failures = refused
    routes: dict[str, object] = {}  # filled below, once the routes exist
    if fast_path:
        app.add_middleware(WriteFastPath, writes=writes, answer=lambda o: _record(o),
                           refused=store_error_body, data_error=DATA_ERROR, routes=routes)
    app.add_middleware(Guard, write_keys=keys, read_keys=readers, max_body_bytes=limit,
                       refused=refused.record)

    @app.exception_handler(StoreError)
    async def _on_store_error(request: Request, exc: StoreError):
        status, body = store_error_body(exc)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(request: Request, exc: RequestValidationError):
        return JSONResponse(invalid_body(exc.errors(), skip=1), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400:  # FastAPI could not even decode the body
            return JSONResponse(NOT_JSON, status_code=422)
        body = {"error": _HTTP_ERRORS.get(exc.status_code, "error"), "message": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(psycopg.DataError)
    async def _on_data_error(request: Request, exc: psycopg.DataError):
        # The schema should have refused it; PostgreSQL did. Never the value, never a 500.
        log.warning("PostgreSQL refused a value the schema accepted: %s", exc.__class__.__name__)
        return JSONResponse(DATA_ERROR, status_code=422)

    if metrics.enabled:
        app.add_middleware(RequestTiming, metrics=metrics)

    def _record(outcome: Outcome) -> tuple[int, dict]:
        if outcome.created:
            metrics.transition(outcome.wallet_id, outcome.from_state, outcome.state.value,
                               outcome.actor)
        body = TokenState(token_ref=outcome.token_ref, state=outcome.state,
                          version=outcome.version, replayed=not outcome.created)
        return (201 if outcome.created else 200), body.model_dump(mode="json")

    def _answer(outcome: Outcome) -> FastJSON:
        status, body = _record(outcome)
        return FastJSON(body, status_code=status)

    secured = [Depends(_documents_bearer)]
    read_errors = {401: {"model": ErrorBody, "description": "No key or an unknown key"},
                   503: {"model": ErrorBody, "description": "The database is unavailable"}}
    write_errors = read_errors | {
        403: {"model": ErrorBody, "description": "A read key on a write"},
        413: {"model": ErrorBody, "description": "The body is larger than the limit"},
        422: {"model": InvalidRequest, "description": "The body breaks the contract"},
    }
    replayed = {200: {"model": TokenState,
                      "description": "A replay: this event_id with this body was recorded "
                                     "before; nothing new is recorded"}}
    created = {"model": TokenState, "description": "Recorded",
               "links": {"TransitionThisToken": {
                   "operationId": "post_transition",
                   "parameters": {"token_ref": "$response.body#/token_ref"}},
                   "StartProvisioning": {
                   "operationId": "post_transition",
                   "description": "The token's first legal step, under an event id of its own",
                   "parameters": {"token_ref": "$response.body#/token_ref"},
                   "requestBody": {"to_state": "ProvisionInitiated", "actor": "token_service",
                                   "event_id": "start.{$response.body#/token_ref}",
                                   "occurred_at": "2026-11-24T10:00:00Z"}},
                   "ReadThisToken": {"operationId": "get_token",
                                     "parameters": {"token_ref": "$response.body#/token_ref"}}}}

    @app.post("/v1/tokens", status_code=201, response_model=TokenState,
              operation_id="create_token", dependencies=secured,
              responses=write_errors | replayed | {201: created, 409: {
                  "model": ErrorBody, "description": "token_exists or event_id_conflict"}})
    async def create_token(body: CreateToken):
        """Create a token in TokenRequested. Replaying the same event_id answers 200."""
        return _answer(await writes.create_token(body))

    @app.post("/v1/tokens/{token_ref}/transitions", status_code=201, response_model=TokenState,
              operation_id="post_transition", dependencies=secured,
              responses=write_errors | replayed | {
                  201: created,
                  404: {"model": ErrorBody, "description": "No such token"},
                  409: {"model": IllegalTransition | ErrorBody,
                        "description": "illegal_transition (with the allowed states) or "
                                       "event_id_conflict"}})
    async def post_transition(token_ref: TokenRefPath, body: TransitionRequest):
        """Move a token to ``to_state``. Illegal moves answer 409 with the allowed states."""
        return _answer(await writes.transition(token_ref, body))

    @app.post("/v1/batch", response_model=BatchResponse, operation_id="post_batch",
              dependencies=secured, responses=write_errors)
    async def post_batch(body: BatchRequest):
        """Up to 1000 creations and transitions, applied in order, each exactly as its single
        endpoint would (the same checks, against the items before it); one result per item,
        whose status and body are what that endpoint would have answered. A bad item gets its
        own 422 and the others are still applied. The valid items are written together, in
        one transaction: when the database is unavailable none is, and from the first valid
        item on every item answers 503."""
        results: list[dict | None] = [None] * len(body.items)
        valid: list[tuple[int, Item]] = []
        for i, raw in enumerate(body.items):
            try:
                valid.append((i, _batch_item(raw)))
            except ValidationError as exc:
                results[i] = {"index": i, "status": 422,
                              "body": invalid_body(exc.errors(), skip=0)}
        try:
            written = await batches.write([item for _, item in valid])
        except DatabaseUnavailable as exc:  # nothing written: from the first write on, 503
            status, err = store_error_body(exc)
            first = valid[0][0]
            for i in range(first, len(results)):
                results[i] = {"index": i, "status": status, "body": err}
            written = []
        for (i, _), outcome in zip(valid, written, strict=False):
            if isinstance(outcome, Outcome):
                status, ok = _record(outcome)
                results[i] = {"index": i, "status": status, "body": ok}
            elif isinstance(outcome, StoreError):
                status, err = store_error_body(outcome)
                results[i] = {"index": i, "status": status, "body": err}
            else:  # psycopg.DataError: the schema should have refused it; PostgreSQL did
                log.warning("PostgreSQL refused a batch item the schema accepted: %s",
                            outcome.__class__.__name__)
                results[i] = {"index": i, "status": 422, "body": DATA_ERROR}
        return FastJSON({"results": results})


    @app.get("/v1/tokens/{token_ref}", response_model=TokenDetail, operation_id="get_token",
             dependencies=secured,
             responses=read_errors | {
                 404: {"model": ErrorBody, "description": "No such token"},
                 422: {"model": InvalidRequest, "description": "token_ref breaks the contract"}})
    async def get_token(token_ref: TokenRefPath):
        """The token's current state and its full history."""
        return await store.get_token(token_ref)

    @app.get("/v1/lifecycle", operation_id="get_lifecycle", dependencies=secured,
             responses={401: read_errors[401]})
    async def get_lifecycle() -> dict:
        """The lifecycle state machine: states, legal transitions and attribute vocabularies."""
        return lifecycle.as_dict()

    @app.get("/healthz", response_model=Health, operation_id="healthz",
             responses={503: {"model": Health, "description": "The database is unavailable"}})
    async def healthz():
        """Liveness and the database's reachability. Needs no key; holds no data."""
        try:
            await store.ping()
        except DatabaseUnavailable:
            return JSONResponse({"status": "degraded", "database": "unavailable"},
                                status_code=503)
        return {"status": "ok", "database": "ok"}

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (BatchCreate, BatchTransition):  # the batch's items, by reference
                item = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(item.pop("$defs", {}))
                components[model.__name__] = item
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    routes.update({r.name: r for r in app.routes if getattr(r, "name", None) in (
        "create_token", "post_transition")})
    return app


DESCRIPTION = """Records provisioning and payment-token state transitions.

Every operation but `/healthz` needs `Authorization: Bearer <key>`: a write key for writes, a
read key or a write key for reads. Request bodies are limited to {limit} bytes (413 beyond).
`occurred_at` is RFC 3339 with a timezone offset, in the years 2000-2099.
No field may hold a card number (PAN): such a request answers 422 naming the field, and no
answer ever echoes an input value."""

NOT_JSON = {"error": "invalid_request", "fields": [{"field": "body", "message": (
    "the body is not UTF-8 JSON")}], "message": "body: the body is not UTF-8 JSON"}
_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed"}
DATA_ERROR = {"error": "invalid_request", "fields": [{"field": "body", "message": (
    "a value cannot be stored (PostgreSQL refused it)")}],
    "message": "body: a value cannot be stored (PostgreSQL refused it)"}


def store_error_body(exc: StoreError) -> tuple[int, dict]:
    """The status and JSON body of a refused write."""
    if isinstance(exc, IllegalTransitionError):
        body = IllegalTransition(message=str(exc), from_state=exc.from_state,
                                 to_state=exc.to_state,
                                 allowed=list(lifecycle.allowed_from(exc.from_state)))
        return 409, body.model_dump(mode="json")
    return exc.status, {"error": exc.code, "message": str(exc)}


def invalid_body(errors: Iterable[dict], skip: int) -> dict:
    """A 422 body naming each wrong field. Never echoes the input: it may be a card number."""
    fields = [{"field": ".".join(str(p) for p in e["loc"][skip:]) or "body",
               "message": _message(e)} for e in errors]
    return {"error": "invalid_request", "fields": fields,
            "message": "; ".join(f"{f['field']}: {f['message']}" for f in fields)}


def _message(error: dict) -> str:
    if error.get("type") == "value_error":  # our validators: "Value error, <message>"
        return str(error["msg"]).removeprefix("Value error, ")
    return str(error["msg"])


def _batch_item(item: dict) -> Item:
    """A batch item validated as its own endpoint's body (a ValidationError otherwise)."""
    op = item.get("op") if isinstance(item, dict) else None
    if op == "create":  # the batch models are their endpoint's, plus op (and token_ref)
        body = BatchCreate.model_validate(item)
        return Item(body.token_ref, CreateToken.model_construct(
            **{f: getattr(body, f) for f in CreateToken.model_fields}))
    if op == "transition":
        body = BatchTransition.model_validate(item)
        return Item(body.token_ref, TransitionRequest.model_construct(
            **{f: getattr(body, f) for f in TransitionRequest.model_fields}))
    raise ValidationError.from_exception_data("item", [
        {"type": "literal_error", "loc": ("op",), "input": op,
         "ctx": {"expected": "'create' or 'transition'"}}])
