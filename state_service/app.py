"""The state service's HTTP API (FastAPI). The contract is in the README and /openapi.json."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool
from pydantic import ValidationError

from state_service import config, lifecycle
from state_service.metrics import ServiceMetrics
from state_service.migrate import migrate
from state_service.schemas import (
    BatchRequest,
    BatchResponse,
    BatchResult,
    CreateToken,
    ErrorBody,
    IllegalTransition,
    TokenDetail,
    TokenState,
    TransitionRequest,
)
from state_service.store import (
    DatabaseUnavailable,
    IllegalTransitionError,
    Outcome,
    StoreError,
    TransitionStore,
)

log = logging.getLogger("tokenwatch.state_service")
_bearer = HTTPBearer(auto_error=False)


def _unauthorized() -> JSONResponse:
    return JSONResponse({"error": "unauthorized",
                         "message": "writes need 'Authorization: Bearer <key>' with a valid key"},
                        status_code=401, headers={"WWW-Authenticate": "Bearer"})


class _Unauthorized(Exception):
    pass


def create_app(dsn: str, api_keys: Iterable[str] | None = None,
               metrics: ServiceMetrics | None = None, pool_size: int = 16,
               run_migrations: bool = True) -> FastAPI:
    """Build the service for the database at ``dsn``. Keys default to TOKENWATCH_API_KEYS."""
    keys = tuple(api_keys if api_keys is not None else config.api_keys())
    metrics = metrics or ServiceMetrics.from_env()
    pool = ConnectionPool(dsn, min_size=2, max_size=pool_size, open=False, timeout=5,
                          reconnect_timeout=0, name="tokenwatch-state")
    store = TransitionStore(pool)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if not keys:
            log.warning("TOKENWATCH_API_KEYS is empty: every write will be refused with 401")
        if run_migrations:
            try:
                migrate(dsn)
            except Exception as exc:  # noqa: BLE001 - the service still starts; /healthz reports the database
                log.error("migrations could not run: %s", exc.__class__.__name__)
        pool.open(wait=False)
        yield
        pool.close()
        metrics.close()

    app = FastAPI(title="tokenwatch state service", version="1", lifespan=lifespan,
                  description="Records provisioning and payment-token state transitions.")
    app.state.store = store

    def require_key(creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        given = creds.credentials.encode() if creds else b""
        if not creds or not any(hmac.compare_digest(given, k.encode()) for k in keys):
            raise _Unauthorized()

    @app.exception_handler(_Unauthorized)
    async def _on_unauthorized(request: Request, exc: _Unauthorized):
        return _unauthorized()

    @app.exception_handler(StoreError)
    async def _on_store_error(request: Request, exc: StoreError):
        status, body = store_error_body(exc)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(request: Request, exc: RequestValidationError):
        return JSONResponse(invalid_body(exc.errors(), skip=1), status_code=422)

    @app.middleware("http")
    async def _timing(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.request(getattr(route, "name", "unmatched"), request.method,
                        response.status_code, time.perf_counter() - start)
        return response

    def _record(outcome: Outcome) -> tuple[int, dict]:
        if outcome.created:
            metrics.transition(outcome.wallet_id, outcome.from_state, outcome.state.value,
                               outcome.actor)
        body = TokenState(token_ref=outcome.token_ref, state=outcome.state,
                          version=outcome.version, replayed=not outcome.created)
        return (201 if outcome.created else 200), body.model_dump(mode="json")

    def _answer(outcome: Outcome) -> JSONResponse:
        status, body = _record(outcome)
        return JSONResponse(body, status_code=status)

    errors = {401: {"model": ErrorBody}, 409: {"model": ErrorBody}, 503: {"model": ErrorBody}}

    @app.post("/v1/tokens", status_code=201, response_model=TokenState, responses=errors,
              dependencies=[Depends(require_key)])
    def create_token(body: CreateToken):
        """Create a token in TokenRequested. Replaying the same event_id answers 200."""
        return _answer(store.create_token(body))

    @app.post("/v1/tokens/{token_ref}/transitions", status_code=201, response_model=TokenState,
              responses=errors | {404: {"model": ErrorBody}},
              dependencies=[Depends(require_key)])
    def post_transition(token_ref: str, body: TransitionRequest):
        """Move a token to ``to_state``. Illegal moves answer 409 with the allowed states."""
        return _answer(store.transition(token_ref, body))

    @app.post("/v1/batch", response_model=BatchResponse, responses=errors,
              dependencies=[Depends(require_key)])
    def post_batch(body: BatchRequest) -> BatchResponse:
        """Up to 1000 creations and transitions, applied in order, each exactly as its single
        endpoint would (its own transaction, the same checks); one result per item."""
        results: list[BatchResult] = []
        for i, item in enumerate(body.items):
            try:
                outcome = _apply_item(store, item)
            except ValidationError as exc:
                results.append(BatchResult(index=i, status=422,
                                           body=invalid_body(exc.errors(), skip=0)))
                continue
            except DatabaseUnavailable as exc:  # stop: later items are not attempted
                status, err = store_error_body(exc)
                results += [BatchResult(index=j, status=status, body=err)
                            for j in range(i, len(body.items))]
                break
            except StoreError as exc:
                status, err = store_error_body(exc)
                results.append(BatchResult(index=i, status=status, body=err))
                continue
            status, ok = _record(outcome)
            results.append(BatchResult(index=i, status=status, body=ok))
        return BatchResponse(results=results)

    @app.get("/v1/tokens/{token_ref}", response_model=TokenDetail,
             responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}})
    def get_token(token_ref: str):
        """The token's current state and its full history."""
        return store.get_token(token_ref)

    @app.get("/v1/lifecycle")
    def get_lifecycle() -> dict:
        """The lifecycle state machine: states, legal transitions and attribute vocabularies."""
        return lifecycle.as_dict()

    @app.get("/healthz")
    def healthz():
        try:
            store.ping()
        except DatabaseUnavailable:
            return JSONResponse({"status": "degraded", "database": "unavailable"},
                                status_code=503)
        return {"status": "ok", "database": "ok"}

    return app


def store_error_body(exc: StoreError) -> tuple[int, dict]:
    """The status and JSON body of a refused write."""
    if isinstance(exc, IllegalTransitionError):
        body = IllegalTransition(from_state=exc.from_state, to_state=exc.to_state,
                                 allowed=list(lifecycle.allowed_from(exc.from_state)))
        return 409, body.model_dump(mode="json")
    return exc.status, {"error": exc.code, "message": str(exc)}


def invalid_body(errors: Iterable[dict], skip: int) -> dict:
    """A 422 body naming each wrong field. Never echoes the input: it may be a card number."""
    fields = [{"field": ".".join(str(p) for p in e["loc"][skip:]) or "body",
               "message": e["msg"]} for e in errors]
    return {"error": "invalid_request", "fields": fields,
            "message": "; ".join(f"{f['field']}: {f['message']}" for f in fields)}


def _apply_item(store: TransitionStore, item: dict) -> Outcome:
    data = dict(item)
    op = data.pop("op", None)
    if op == "create":
        return store.create_token(CreateToken.model_validate(data))
    if op == "transition":
        token_ref = data.pop("token_ref", None)
        if not isinstance(token_ref, str):
            raise ValidationError.from_exception_data("item", [
                {"type": "missing", "loc": ("token_ref",), "input": None}])
        return store.transition(token_ref, TransitionRequest.model_validate(data))
    raise ValidationError.from_exception_data("item", [
        {"type": "literal_error", "loc": ("op",), "input": op,
         "ctx": {"expected": "'create' or 'transition'"}}])
