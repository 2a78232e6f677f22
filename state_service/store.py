"""Recording transitions in PostgreSQL: serialised per token, idempotent by event_id.

Each write is one transaction of two messages. The first is one server-side call
(``tokenwatch_prepare_transition``, migration 0005): lock the token row (``FOR UPDATE``), look
up the event_id, check the move against the legal pairs (lifecycle.py's, as data), read the
row's identity, transaction and clock, and hash the row. The second carries the row's seal,
computed here under a key PostgreSQL never sees, with the insert, the token's move and the
COMMIT, in one pipeline. Concurrent writers on the same token queue on the row lock, so none
is lost or applied twice; creators of one token_ref queue on an advisory lock; the unique
constraint on event_id is the backstop for writers racing on different tokens with the same
event_id (retried once, then answered as a replay or a conflict).
"""

from __future__ import annotations

import hashlib
import json
import weakref
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import AsyncClientCursor, errors
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

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


NOT_MIGRATED = ("the state database is not migrated (run tokenwatch db migrate as its admin);"
                " retry later")


@dataclass(frozen=True)
class Outcome:
    token_ref: str
    state: State
    version: int
    created: bool  # False: an idempotent replay, nothing new recorded
    wallet_id: str = ""
    from_state: State | None = None
    actor: str = ""


#: Where the prepare functions return the actor (their OUT parameters, migration 0005).
_ACTOR = 7


def _create_as_transition(p: tuple) -> tuple:
    """A prepare_create result laid out as a prepare_transition one (for ``_refused``)."""
    outcome, state, version, from_state, wallet_id, actor = p[:6]
    return (outcome, state, version, from_state, wallet_id, None, None, actor)


def request_hash(kind: str, token_ref: str, body: CreateToken | TransitionRequest) -> str:
    """A fingerprint of a request, to tell a retry from a different request with the same id."""
    data = body.model_dump(mode="python")
    data = {k: (format_ts(v) if isinstance(v, datetime) else v) for k, v in data.items()}
    data |= {"kind": kind, "token_ref": token_ref}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


#: The write functions (migration 0005) as each connection's prepared statements: name ->
#: (argument types, the call). Prepared once per connection (``PREPARE``), then run with
#: ``EXECUTE`` inside the two messages of a write, each one simple-protocol round trip.
_STATEMENTS: dict[str, tuple[str, str]] = {
    "tw_prepare_transition": ("text, text, text, text, text, text, text, timestamptz, text",
                              "select * from tokenwatch_prepare_transition"),
    "tw_apply_transition": ("bigint, text, text, integer, text, text, text, text, text, text,"
                            " text, text, text, text, timestamptz, timestamptz, text, text,"
                            " text, text, text", "select tokenwatch_apply_transition"),
    "tw_prepare_create": ("text, text, text, text, text, text, timestamptz, text, text",
                          "select * from tokenwatch_prepare_create"),
    "tw_apply_create": ("bigint, text, text, text, text, text, text, text, text, timestamptz,"
                        " timestamptz, text, text, text, text, text, text",
                        "select tokenwatch_apply_create"),
}


def _utc(ts: datetime) -> datetime:
    """A timestamp in UTC for a literal: PostgreSQL refuses offsets beyond +-15:59 in text
    (RFC 3339 allows up to 23:59), and the chain reads it in UTC anyway."""
    return ts.astimezone(UTC)


def _prepare_all() -> str:
    out = []
    for name, (types, call) in _STATEMENTS.items():
        n = types.count(",") + 1
        out.append(f"prepare {name} ({types}) as {call}("
                   + ", ".join(f"${i}" for i in range(1, n + 1)) + ")")
    return "; ".join(out)


def _execute(name: str) -> str:
    n = _STATEMENTS[name][0].count(",") + 1
    return f"execute {name} (" + ", ".join(["%s"] * n) + ")"


_PREPARE_ALL = _prepare_all()
#: The first message of a write: open the transaction and run the prepare function.
_BEGIN_PREPARE_TRANSITION = "begin; " + _execute("tw_prepare_transition")
_BEGIN_PREPARE_CREATE = "begin; " + _execute("tw_prepare_create")
#: The second: the sealed row, the token's move and the COMMIT.
_APPLY_TRANSITION_COMMIT = _execute("tw_apply_transition") + "; commit"
_APPLY_CREATE_COMMIT = _execute("tw_apply_create") + "; commit"


class TransitionStore:
    """The state service's storage operations over a connection pool.

    A write is two messages (two round trips) in one transaction: ``BEGIN`` and the prepare
    function (lock, idempotency, legality, the row's identity and clock, its hash: one
    server-side call), then the seal (an HMAC under a key PostgreSQL never sees, computed
    here) with the insert, the token's move and the ``COMMIT``. A replay or a refusal answers
    after the first (and a ``ROLLBACK``). The pool's connections are in autocommit: the
    transaction is the messages' own ``BEGIN``/``COMMIT``, so psycopg adds no round trip.
    """

    def __init__(self, pool: AsyncConnectionPool, keys: tuple[str, dict[str, bytes]] | None = None):
        self.pool = pool
        self.key_id, keyring = keys or config.chain_keys()
        self._key = keyring[self.key_id]
        self._prepared: weakref.WeakSet = weakref.WeakSet()  # connections with _STATEMENTS
        self.lost_statements = 0  # times a connection's statements were gone (tests read it)

    @asynccontextmanager
    async def _session(self):
        """A pool connection for one write; whatever transaction it leaves open (a refusal,
        an error) is rolled back before the connection goes back."""
        async with self.pool.connection() as conn:
            try:
                if conn not in self._prepared:
                    await conn.execute(_PREPARE_ALL)
                    self._prepared.add(conn)
                yield conn
            except errors.InvalidSqlStatementName:
                # psycopg deallocates every prepared statement when it rolls back itself (a
                # pool reset, a failed transaction block): prepare again and retry
                self._prepared.discard(conn)
                self.lost_statements += 1
                raise
            finally:
                if conn.info.transaction_status in (TransactionStatus.INTRANS,
                                                    TransactionStatus.INERROR):
                    try:
                        await conn.execute("rollback")
                    except psycopg.Error:
                        pass  # a broken connection: the pool discards it

    @staticmethod
    async def _first(conn, query: str, args: tuple) -> tuple:
        cur = AsyncClientCursor(conn)
        await cur.execute(query, args)
        cur.nextset()  # past BEGIN, to the prepare function's row
        return await cur.fetchone()

    # -- writes ---------------------------------------------------------------------------
    async def create_token(self, body: CreateToken) -> Outcome:
        return await self._retrying(self._create, body)

    async def transition(self, token_ref: str, body: TransitionRequest) -> Outcome:
        return await self._retrying(self._transition, token_ref, body)

    async def _retrying(self, fn, *args) -> Outcome:
        """Run a write; after a lost connection retry once (writes are idempotent by event_id)."""
        for attempt in (1, 2):
            try:
                return await fn(*args)
            except (errors.UniqueViolation, errors.InvalidSqlStatementName):
                if attempt == 2:
                    raise
            except errors.UndefinedFunction as exc:
                raise DatabaseUnavailable(NOT_MIGRATED) from exc
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if attempt == 2 or isinstance(exc, PoolTimeout):
                    raise DatabaseUnavailable(
                        "the state database is not reachable; retry later") from exc
        raise AssertionError("unreachable")

    @staticmethod
    def _refused(outcome: str, token_ref: str, p: tuple) -> Outcome:
        """The answer to a prepare that wrote nothing: a replay, or the refusal's error."""
        if outcome == "replay":
            # p: outcome, state, version, from_state, wallet_id, ..., actor (see the SQL)
            return Outcome(token_ref, State(p[1]), p[2], created=False, wallet_id=p[4],
                           actor=p[_ACTOR], from_state=State(p[3]) if p[3] else None)
        if outcome == "event_id_conflict":
            raise EventIdConflict("event_id was already used for a different request")
        if outcome == "token_not_found":
            raise TokenNotFound("no such token")
        if outcome == "token_exists":
            raise TokenExists("a token with this token_ref already exists")
        raise AssertionError(f"unknown outcome {outcome!r}")

    async def _create(self, body: CreateToken) -> Outcome:
        rhash = request_hash("create", body.token_ref, body)
        initial = lifecycle.INITIAL_STATE.value
        async with self._session() as conn:
            (outcome, _state, _v, _f, _w, _actor, transition_id, xact_id, recorded_at,
             row_hash) = p = await self._first(conn, _BEGIN_PREPARE_CREATE, (
                 body.token_ref, body.event_id, body.actor, body.wallet_id, body.network,
                 body.token_type, _utc(body.occurred_at), rhash, initial))
            if outcome != "new":
                return self._refused(outcome, body.token_ref, _create_as_transition(p))
            row = {"transition_id": transition_id, "xact_id": xact_id,
                   "token_ref": body.token_ref, "version": 1, "event_id": body.event_id,
                   "from_state": None, "to_state": initial, "actor": body.actor,
                   "reason_code": None, "decision": None, "idv_method": None,
                   "wallet_id": body.wallet_id, "network": body.network,
                   "token_type": body.token_type, "occurred_at": body.occurred_at,
                   "recorded_at": recorded_at, "request_hash": rhash, "key_id": self.key_id}
            token = {"token_ref": body.token_ref, "wallet_id": body.wallet_id,
                     "network": body.network, "token_type": body.token_type,
                     "card_ref": body.card_ref, "created_at": recorded_at,
                     "key_id": self.key_id}
            await AsyncClientCursor(conn).execute(_APPLY_CREATE_COMMIT, (
                transition_id, xact_id, body.token_ref, body.event_id, body.actor,
                body.wallet_id, body.network, body.token_type, body.card_ref,
                _utc(body.occurred_at), recorded_at, rhash, row_hash, self.key_id,
                chain.row_mac(self._key, row), chain.attrs_mac(self._key, token), initial))
        return Outcome(body.token_ref, lifecycle.INITIAL_STATE, 1, created=True,
                       wallet_id=body.wallet_id, actor=body.actor)

    async def _transition(self, token_ref: str, body: TransitionRequest) -> Outcome:
        rhash = request_hash("transition", token_ref, body)
        async with self._session() as conn:
            p = await self._first(conn, _BEGIN_PREPARE_TRANSITION, (
                token_ref, body.event_id, body.to_state.value, body.actor, body.reason_code,
                body.decision, body.idv_method, _utc(body.occurred_at), rhash))
            (outcome, state, version, from_state, wallet_id, network, token_type, actor,
             transition_id, xact_id, recorded_at, prev_hash, row_hash) = p
            if outcome == "illegal_transition":
                raise IllegalTransitionError(State(state), body.to_state)
            if outcome != "new":
                return self._refused(outcome, token_ref, p)
            row = {"transition_id": transition_id, "xact_id": xact_id, "token_ref": token_ref,
                   "version": version, "event_id": body.event_id, "from_state": from_state,
                   "to_state": state, "actor": body.actor, "reason_code": body.reason_code,
                   "decision": body.decision, "idv_method": body.idv_method,
                   "wallet_id": wallet_id, "network": network, "token_type": token_type,
                   "occurred_at": body.occurred_at, "recorded_at": recorded_at,
                   "request_hash": rhash, "key_id": self.key_id}
            await AsyncClientCursor(conn).execute(_APPLY_TRANSITION_COMMIT, (
                transition_id, xact_id, token_ref, version, body.event_id, from_state,
                state, body.actor, body.reason_code, body.decision, body.idv_method,
                wallet_id, network, token_type, _utc(body.occurred_at), recorded_at, rhash,
                prev_hash, row_hash, self.key_id, chain.row_mac(self._key, row)))
        return Outcome(token_ref, body.to_state, version, created=True, wallet_id=wallet_id,
                       from_state=State(from_state), actor=body.actor)

    # -- reads ----------------------------------------------------------------------------
    async def get_token(self, token_ref: str) -> dict:
        try:
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    "select token_ref, wallet_id, network, token_type, state, version,"
                    " created_at, updated_at from tokens where token_ref = %s",
                    [token_ref])
                token = await cur.fetchone()
                if token is not None:  # the history up to the version read, no later one
                    await cur.execute(
                        "select version, event_id, from_state, to_state, actor, reason_code,"
                        " decision, idv_method, occurred_at, recorded_at, row_hash"
                        " from token_state_transitions where token_ref = %s and version <= %s"
                        " order by version", [token_ref, token["version"]])
                    token["history"] = await cur.fetchall()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailable("the state database is not reachable; retry later") \
                from exc
        if token is None:
            raise TokenNotFound("no such token")
        return token

    async def ping(self) -> None:
        try:
            async with self.pool.connection(timeout=2) as conn:
                await conn.execute("select 1")
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailable("the state database is not reachable") from exc
