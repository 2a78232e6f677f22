"""``POST /v1/batch`` set-based: a batch's writes in one transaction of two messages.

The contract is the single endpoints' applied in order: each item answers what its own
endpoint would have answered had it been sent alone, right after the items before it. So:

1. One pipeline reads everything the batch touches: the advisory locks of the tokens it
   creates and the row locks of the tokens it moves (both in sorted order, so two batches
   cannot deadlock), the event_ids it carries, and one identity, transaction id and clock
   reading per item.
2. The items are decided here in order, against those rows and against the items before them
   (a replay of an earlier item, a move from the state an earlier item left): the rules are the
   write functions' (migration 0005), with the legal pairs from the same definition
   (state_service/lifecycle.py), and tests/state_service/test_batch_set_based.py proves
   both give the same answers and the same rows.
3. One pipeline writes the result: the new tokens, every new row (one INSERT of arrays), each
   moved token's final state (one UPDATE of arrays), and the COMMIT.

Two writers racing on an event_id of different tokens collide on the log's unique constraint:
the batch is retried once, and then answers those items as replays or conflicts. A value
PostgreSQL refuses though the schema accepted it (``DataError``) fails the whole statement;
the batch is then written item by item, so only that item answers 422.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import psycopg
from psycopg import errors
from psycopg_pool import PoolTimeout

from state_service import chain, lifecycle
from state_service.lifecycle import State
from state_service.schemas import CreateToken, TransitionRequest
from state_service.store import (
    NOT_MIGRATED,
    DatabaseUnavailable,
    EventIdConflict,
    IllegalTransitionError,
    Outcome,
    StoreError,
    TokenExists,
    TokenNotFound,
    TransitionStore,
    request_hash,
)
from tokenwatch import tracing


@dataclass(frozen=True)
class Item:
    """A valid batch item: a creation (``body`` a CreateToken) or a transition."""

    token_ref: str
    body: CreateToken | TransitionRequest

    @property
    def creates(self) -> bool:
        return isinstance(self.body, CreateToken)


Result = Outcome | StoreError | psycopg.DataError


async def write_alone(store: TransitionStore, item: Item) -> Outcome:
    """``item`` as its own endpoint writes it: the write functions, one transaction of its own."""
    return await (store.create_token(item.body) if item.creates
                  else store.transition(item.token_ref, item.body))

_LOCK_CREATED = ("select pg_advisory_xact_lock(hashtextextended('tokenwatch.token:' || r, 0))"
                 " from unnest(%s::text[]) as r order by r")
_LOCK_TOKENS = ("select token_ref, state, version, last_hash, wallet_id, network, token_type"
                " from tokens where token_ref = any(%s) order by token_ref for update")
_EVENTS = ("select event_id, token_ref, request_hash, to_state, version, wallet_id, from_state,"
           " actor from token_state_transitions where event_id = any(%s)")
_CONTEXT = ("select nextval('token_state_transitions_transition_id_seq'::regclass),"
            " pg_current_xact_id()::text, clock_timestamp() from generate_series(1, %s)")
_ROW_COLUMNS = ("transition_id", "xact_id", "token_ref", "version", "event_id", "from_state",
                "to_state", "actor", "reason_code", "decision", "idv_method", "wallet_id",
                "network", "token_type", "occurred_at", "recorded_at", "request_hash",
                "prev_hash", "row_hash", "key_id", "row_mac")
#: The writes take their rows as one JSON document each, read by PostgreSQL into records of
#: the table's own type (its columns, its types): one parameter however many rows.
_INSERT_ROWS = ("insert into token_state_transitions overriding system value select * from"
                " json_populate_recordset(null::token_state_transitions, %s::json)")
_TOKEN_COLUMNS = ("token_ref", "wallet_id", "network", "token_type", "card_ref", "state",
                  "version", "last_hash", "created_at", "updated_at", "key_id", "attrs_mac")
_INSERT_TOKENS = (f"insert into tokens ({', '.join(_TOKEN_COLUMNS)}) select"
                  f" {', '.join(_TOKEN_COLUMNS)} from json_populate_recordset(null::tokens,"
                  " %s::json)")
_MOVE_COLUMNS = ("token_ref", "state", "version", "last_hash", "updated_at")
_MOVE_TOKENS = (
    "update tokens t set state = u.state, version = u.version, last_hash = u.last_hash,"
    " updated_at = u.updated_at from json_populate_recordset(null::tokens, %s::json) as u"
    " where t.token_ref = u.token_ref")


class BatchWriter:
    """Writes a batch of valid items set-based; see the module's docstring."""

    def __init__(self, store: TransitionStore):
        self.store = store

    async def write(self, items: list[Item]) -> list[Result]:
        """One result per item, in order: an Outcome, or the StoreError (or DataError) its
        own endpoint would have answered with. Raises DatabaseUnavailable for the whole batch
        (none of it was written)."""
        if not items:
            return []
        for attempt in (1, 2):
            try:
                return await self._write(items)
            except errors.UniqueViolation:
                if attempt == 2:
                    raise
            except psycopg.DataError:
                return await self._one_by_one(items)
            except (errors.UndefinedTable, errors.UndefinedFunction) as exc:
                raise DatabaseUnavailable(NOT_MIGRATED) from exc
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if attempt == 2 or isinstance(exc, PoolTimeout):
                    raise DatabaseUnavailable(
                        "the state database is not reachable; retry later") from exc
        raise AssertionError("unreachable")

    async def _one_by_one(self, items: list[Item]) -> list[Result]:
        results: list[Result] = []
        for item in items:
            try:
                results.append(await write_alone(self.store, item))
            except (StoreError, psycopg.DataError) as exc:
                if isinstance(exc, DatabaseUnavailable):
                    raise
                results.append(exc)
        return results

    async def _write(self, items: list[Item]) -> list[Result]:
        store = self.store
        created = sorted({i.token_ref for i in items if i.creates})
        refs = sorted({i.token_ref for i in items})
        async with store._session() as session:
            conn, span = tracing.round_trip(session, "batch: locks, event ids, contexts")
            with span:
                async with conn.pipeline():
                    await conn.execute("begin")
                    if created:
                        await conn.execute(_LOCK_CREATED, [created])
                    tok_cur = await conn.execute(_LOCK_TOKENS, [refs])
                    ev_cur = await conn.execute(_EVENTS, [[i.body.event_id for i in items]],
                                                prepare=True)
                    ctx_cur = await conn.execute(_CONTEXT, [len(items)])
            heads = {r[0]: list(r[1:]) for r in await tok_cur.fetchall()}
            events = {r[0]: r[1:] for r in await ev_cur.fetchall()}
            contexts = await ctx_cur.fetchall()
            plan = _Plan(store, heads, events)
            results = [plan.decide(item, ctx) for item, ctx in zip(items, contexts, strict=True)]
            if not plan.rows:
                return results  # nothing to write: the session rolls back
            tokens, moves = plan.token_rows(), plan.moves()
            conn, span = tracing.round_trip(session, "batch: tokens, rows, moves, commit")
            with span:
                async with conn.pipeline():
                    if tokens:
                        await conn.execute(_INSERT_TOKENS, [_json(_TOKEN_COLUMNS, tokens)],
                                           prepare=True)
                    await conn.execute(_INSERT_ROWS, [_json(_ROW_COLUMNS, plan.rows)])
                    if moves:
                        await conn.execute(_MOVE_TOKENS, [_json(_MOVE_COLUMNS, moves)],
                                           prepare=True)
                    await conn.execute("commit")
        return results


def _json(columns: tuple[str, ...], rows: list[tuple]) -> str:
    """Rows as a JSON array of objects keyed by column (json_populate_recordset's input)."""
    return orjson.dumps([dict(zip(columns, row, strict=True)) for row in rows]).decode()


class _Plan:
    """The batch's decisions, item by item (the write functions' rules), and what to write."""

    def __init__(self, store: TransitionStore, heads: dict[str, list], events: dict[str, tuple]):
        self.key_id, self.key = store.key_id, store._key
        #: token_ref -> [state, version, last_hash, wallet_id, network, token_type, updated_at]
        self.heads = {ref: head + [None] for ref, head in heads.items()}
        self.events = events  # event_id -> (token_ref, request_hash, to_state, version, ...)
        self.rows: list[tuple] = []
        self.new_tokens: dict[str, dict] = {}  # created by this batch: their fixed attributes
        self.moved: dict[str, None] = {}  # tokens that existed before and moved (ordered set)

    def decide(self, item: Item, ctx: tuple) -> Result:
        body, ref = item.body, item.token_ref
        rhash = request_hash("create" if item.creates else "transition", ref, body)
        head = self.heads.get(ref)
        found = self.events.get(body.event_id)
        if not item.creates and head is None:
            return EventIdConflict("event_id was already used for a different request") \
                if found else TokenNotFound("no such token")
        if found is not None:
            if found[0] != ref or found[1] != rhash:
                return EventIdConflict("event_id was already used for a different request")
            return Outcome(ref, State(found[2]), found[3], created=False, wallet_id=found[4],
                           actor=found[6], from_state=State(found[5]) if found[5] else None)
        transition_id, xact_id, now = ctx
        row = {"transition_id": transition_id, "xact_id": xact_id, "token_ref": ref,
               "event_id": body.event_id, "actor": body.actor, "occurred_at": body.occurred_at,
               "recorded_at": now, "request_hash": rhash, "key_id": self.key_id}
        if item.creates:
            if head is not None:
                return TokenExists("a token with this token_ref already exists")
            state = lifecycle.INITIAL_STATE
            row |= {"version": 1, "from_state": None, "to_state": state.value,
                    "reason_code": None, "decision": None, "idv_method": None,
                    "wallet_id": body.wallet_id, "network": body.network,
                    "token_type": body.token_type, "prev_hash": chain.GENESIS_HASH}
            self.new_tokens[ref] = {"token_ref": ref, "wallet_id": body.wallet_id,
                                    "network": body.network, "token_type": body.token_type,
                                    "card_ref": body.card_ref, "created_at": now,
                                    "key_id": self.key_id}
            head = self.heads[ref] = [None, 0, None, body.wallet_id, body.network,
                                      body.token_type, None]
            outcome = Outcome(ref, state, 1, created=True, wallet_id=body.wallet_id,
                              actor=body.actor)
        else:
            current = State(head[0])
            if not lifecycle.is_legal(current, body.to_state):
                return IllegalTransitionError(current, body.to_state)
            state = body.to_state
            row |= {"version": head[1] + 1, "from_state": current.value,
                    "to_state": state.value, "reason_code": body.reason_code,
                    "decision": body.decision, "idv_method": body.idv_method,
                    "wallet_id": head[3], "network": head[4], "token_type": head[5],
                    "prev_hash": head[2]}
            if ref not in self.new_tokens:
                self.moved[ref] = None
            outcome = Outcome(ref, state, row["version"], created=True, wallet_id=head[3],
                              from_state=current, actor=body.actor)
        row["row_hash"] = chain.row_hash(row)
        row["row_mac"] = chain.row_mac(self.key, row)
        self.rows.append(tuple(row[c] for c in _ROW_COLUMNS))
        self.events[body.event_id] = (ref, rhash, state.value, row["version"], row["wallet_id"],
                                      row["from_state"], body.actor)
        head[0], head[1], head[2], head[6] = state.value, row["version"], row["row_hash"], now
        return outcome

    def token_rows(self) -> list[tuple]:
        """The tokens this batch creates, as they stand at its end."""
        out = []
        for ref, token in self.new_tokens.items():
            state, version, last_hash, *_, updated_at = self.heads[ref]
            out.append((ref, token["wallet_id"], token["network"], token["token_type"],
                        token["card_ref"], state, version, last_hash, token["created_at"],
                        updated_at, self.key_id, chain.attrs_mac(self.key, token)))
        return out

    def moves(self) -> list[tuple]:
        """Each token that existed before the batch and moved: its state at the batch's end."""
        return [(ref, *self.heads[ref][:3], self.heads[ref][6]) for ref in self.moved]
