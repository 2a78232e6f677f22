"""Recording transitions in PostgreSQL: serialised per token, idempotent by event_id.

Each write is one transaction: lock the token row (``FOR UPDATE``), look up the event_id,
read the database clock, then insert the transition and move the token. Concurrent writers on
the same token queue on the row lock, so none is lost or applied twice; the unique constraint
on event_id is the backstop for writers racing on different tokens with the same event_id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import errors
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from state_service import chain, lifecycle
from state_service.chain import format_ts
from state_service.lifecycle import State
from state_service.schemas import CreateToken, TransitionRequest
from tokenwatch import config


class StoreError(Exception):
    status = 400
    code = "error"


class TokenNotFound(StoreError):
    status, code = 404, "token_not_found"


class EventIdConflict(StoreError):
    status, code = 409, "event_id_conflict"


class TokenExists(StoreError):
    status, code = 409, "token_exists"


class IllegalTransitionError(StoreError):
    status, code = 409, "illegal_transition"

    def __init__(self, from_state: State, to_state: State):
        self.from_state, self.to_state = from_state, to_state
        super().__init__(f"{from_state.value} -> {to_state.value} is not a legal transition")


class DatabaseUnavailable(StoreError):
    status, code = 503, "database_unavailable"


@dataclass(frozen=True)
class Outcome:
    token_ref: str
    state: State
    version: int
    created: bool  # False: an idempotent replay, nothing new recorded
    wallet_id: str = ""
    from_state: State | None = None
    actor: str = ""


def request_hash(kind: str, token_ref: str, body: CreateToken | TransitionRequest) -> str:
    """A fingerprint of a request, to tell a retry from a different request with the same id."""
    data = body.model_dump(mode="python")
    data = {k: (format_ts(v) if isinstance(v, datetime) else v) for k, v in data.items()}
    data |= {"kind": kind, "token_ref": token_ref}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


_INSERT = (
    "insert into token_state_transitions (transition_id, xact_id, token_ref, version, event_id,"
    " from_state, to_state, actor, reason_code, decision, idv_method, wallet_id, network,"
    " token_type, occurred_at, recorded_at, request_hash, prev_hash, row_hash, key_id, row_mac)"
    " overriding system value values (%(transition_id)s, %(xact_id)s::text::xid8,"
    " %(token_ref)s, %(version)s, %(event_id)s, %(from_state)s, %(to_state)s, %(actor)s,"
    " %(reason_code)s, %(decision)s, %(idv_method)s, %(wallet_id)s, %(network)s,"
    " %(token_type)s, %(occurred_at)s, %(recorded_at)s, %(request_hash)s, %(prev_hash)s,"
    " %(row_hash)s, %(key_id)s, %(row_mac)s)"
)
#: The row's identity, transaction and clock, read before the insert so the seal covers them.
_ROW_CONTEXT = (
    "select clock_timestamp() as now, pg_current_xact_id()::text as xact_id,"
    " nextval(pg_get_serial_sequence('token_state_transitions', 'transition_id'))"
    " as transition_id"
)
_FIND_EVENT = (
    "select token_ref, request_hash, to_state, version, wallet_id, from_state, actor"
    " from token_state_transitions where event_id = %s"
)


class TransitionStore:
    """The state service's storage operations over a connection pool."""

    def __init__(self, pool: ConnectionPool, keys: tuple[str, dict[str, bytes]] | None = None):
        self.pool = pool
        self.key_id, keyring = keys or config.chain_keys()
        self._key = keyring[self.key_id]

    # -- writes ---------------------------------------------------------------------------
    def create_token(self, body: CreateToken) -> Outcome:
        return self._retrying(self._create, body)

    def transition(self, token_ref: str, body: TransitionRequest) -> Outcome:
        return self._retrying(self._transition, token_ref, body)

    def _retrying(self, fn, *args) -> Outcome:
        """Run a write; after a lost connection retry once (writes are idempotent by event_id)."""
        for attempt in (1, 2):
            try:
                return fn(*args)
            except errors.UniqueViolation:
                if attempt == 2:
                    raise
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if attempt == 2 or isinstance(exc, PoolTimeout):
                    raise DatabaseUnavailable(
                        "the state database is not reachable; retry later") from exc
        raise AssertionError("unreachable")

    def _replay(self, found: dict | None, token_ref: str, rhash: str) -> Outcome | None:
        if found is None:
            return None
        if found["token_ref"] != token_ref or found["request_hash"] != rhash:
            raise EventIdConflict("event_id was already used for a different request")
        return Outcome(token_ref, State(found["to_state"]), found["version"], created=False,
                       wallet_id=found["wallet_id"], actor=found["actor"],
                       from_state=State(found["from_state"]) if found["from_state"] else None)

    def _create(self, body: CreateToken) -> Outcome:
        rhash = request_hash("create", body.token_ref, body)
        with self.pool.connection() as conn:
            conn.row_factory = dict_row
            with conn.pipeline():
                found_cur = conn.execute(_FIND_EVENT, [body.event_id])
                ctx_cur = conn.execute(_ROW_CONTEXT)
            replay = self._replay(found_cur.fetchone(), body.token_ref, rhash)
            if replay:
                return replay
            ctx = ctx_cur.fetchone()
            now = ctx["now"]
            row = self._row(ctx, body.token_ref, 1, None, State.TOKEN_REQUESTED, body, rhash,
                            chain.GENESIS_HASH, body.wallet_id, body.network, body.token_type)
            token = {"token_ref": body.token_ref, "wallet_id": body.wallet_id,
                     "network": body.network, "token_type": body.token_type,
                     "card_ref": body.card_ref, "created_at": now, "key_id": self.key_id}
            inserted = conn.execute(
                "insert into tokens (token_ref, wallet_id, network, token_type, card_ref, state,"
                " version, last_hash, created_at, updated_at, key_id, attrs_mac) values (%s, %s,"
                " %s, %s, %s, %s, 1, %s, %s, %s, %s, %s) on conflict (token_ref) do nothing"
                " returning token_ref",
                [body.token_ref, body.wallet_id, body.network, body.token_type, body.card_ref,
                 State.TOKEN_REQUESTED.value, row["row_hash"], now, now, self.key_id,
                 chain.attrs_mac(self._key, token)]).fetchone()
            if inserted is None:
                conn.rollback()
                replay = self._replay(conn.execute(_FIND_EVENT, [body.event_id]).fetchone(),
                                      body.token_ref, rhash)
                if replay:
                    return replay
                raise TokenExists("a token with this token_ref already exists")
            conn.execute(_INSERT, row)
        return Outcome(body.token_ref, State.TOKEN_REQUESTED, 1, created=True,
                       wallet_id=body.wallet_id, actor=body.actor)

    def _transition(self, token_ref: str, body: TransitionRequest) -> Outcome:
        rhash = request_hash("transition", token_ref, body)
        with self.pool.connection() as conn:
            conn.row_factory = dict_row
            with conn.pipeline():
                tok_cur = conn.execute(
                    "select state, version, last_hash, wallet_id, network, token_type"
                    " from tokens where token_ref = %s for update", [token_ref])
                found_cur = conn.execute(_FIND_EVENT, [body.event_id])
                ctx_cur = conn.execute(_ROW_CONTEXT)
            token, found = tok_cur.fetchone(), found_cur.fetchone()
            if token is None:
                if found is not None:
                    raise EventIdConflict("event_id was already used for a different request")
                raise TokenNotFound("no such token")
            replay = self._replay(found, token_ref, rhash)
            if replay:
                return replay
            current = State(token["state"])
            if not lifecycle.is_legal(current, body.to_state):
                raise IllegalTransitionError(current, body.to_state)
            ctx = ctx_cur.fetchone()
            now = ctx["now"]
            version = token["version"] + 1
            row = self._row(ctx, token_ref, version, current, body.to_state, body, rhash,
                            token["last_hash"], token["wallet_id"], token["network"],
                            token["token_type"])
            with conn.pipeline():
                conn.execute(_INSERT, row)
                conn.execute(
                    "update tokens set state = %s, version = %s, last_hash = %s, updated_at = %s"
                    " where token_ref = %s",
                    [body.to_state.value, version, row["row_hash"], now, token_ref])
        return Outcome(token_ref, body.to_state, version, created=True,
                       wallet_id=token["wallet_id"], from_state=current, actor=body.actor)

    def _row(self, ctx, token_ref, version, from_state, to_state, body, rhash, prev_hash,
             wallet_id, network, token_type) -> dict:
        now = ctx["now"]
        row = {
            "transition_id": ctx["transition_id"], "xact_id": ctx["xact_id"],
            "token_ref": token_ref, "version": version, "event_id": body.event_id,
            "from_state": from_state.value if from_state else None,
            "to_state": to_state.value, "actor": body.actor,
            "reason_code": getattr(body, "reason_code", None),
            "decision": getattr(body, "decision", None),
            "idv_method": getattr(body, "idv_method", None),
            "wallet_id": wallet_id, "network": network, "token_type": token_type,
            "occurred_at": body.occurred_at, "recorded_at": now, "request_hash": rhash,
            "prev_hash": prev_hash, "key_id": self.key_id,
        }
        row["row_hash"] = chain.row_hash(row)
        row["row_mac"] = chain.row_mac(self._key, row)
        return row

    # -- reads ----------------------------------------------------------------------------
    def get_token(self, token_ref: str) -> dict:
        try:
            with self.pool.connection() as conn:
                conn.row_factory = dict_row
                token = conn.execute(
                    "select token_ref, wallet_id, network, token_type, state, version,"
                    " created_at, updated_at from tokens where token_ref = %s",
                    [token_ref]).fetchone()
                if token is None:
                    raise TokenNotFound("no such token")
                token["history"] = conn.execute(
                    "select version, event_id, from_state, to_state, actor, reason_code,"
                    " decision, idv_method, occurred_at, recorded_at, row_hash"
                    " from token_state_transitions where token_ref = %s order by version",
                    [token_ref]).fetchall()
                return token
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailable("the state database is not reachable; retry later") \
                from exc

    def ping(self) -> None:
        try:
            with self.pool.connection(timeout=2) as conn:
                conn.execute("select 1")
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailable("the state database is not reachable") from exc
