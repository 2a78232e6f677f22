"""One table of tamper cases, applied as a database superuser would (trigger off, constraints
dropped where needed), each to a token of its own in a recorded history. Both verifiers, Python's
``tokenwatch audit verify`` and the warehouse's audit marts, must flag every case on the token
and version given here, and pass the untampered tokens.

``record_history`` writes the history through the service's API; ``apply_all`` tampers.
The order both verifiers are tested in: record, checkpoint, tamper, checkpoint again (the
writer of a checkpoint holds the key: a forged row lands in it marked ``sealed = false``),
verify.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import httpx
import psycopg

from state_service import chain
from state_service.lifecycle import State
from tests.state_service.helpers import WALK, create_body, new_ref, transition_body

S = State
#: A history of 10 rows: created, provisioned, suspended for fraud, resumed, suspended, gone.
HISTORY = WALK[S.TOKEN_ACTIVE] + [
    (S.TOKEN_SUSPENDED, {"reason_code": "suspected_fraud", "actor": "issuer"}),
    (S.TOKEN_ACTIVE, {"reason_code": "not_fraud", "actor": "issuer"}),
    (S.TOKEN_SUSPENDED, {"reason_code": "device_lost", "actor": "cardholder"}),
    (S.TOKEN_DEACTIVATED, {"reason_code": "device_stolen", "actor": "cardholder"}),
]
ROWS = len(HISTORY) + 1


class Case(NamedTuple):
    name: str
    kind: str  # the finding both verifiers must report
    version: int | None  # the version they must name (None: the token as a whole)
    apply: Callable[[psycopg.Connection, str], None]
    #: False where the warehouse cannot see it: the ``tokens`` table and the seals stay in
    #: PostgreSQL (the warehouse holds the log and the checkpoints, never a key).
    in_warehouse: bool = True


def _unlocked(db: psycopg.Connection) -> None:
    db.execute("set session_replication_role = replica")  # the append-only trigger is off


def reseal(db: psycopg.Connection, ref: str) -> None:
    """Recompute the plain chain of ``ref`` in place and point ``tokens`` at its new head, as
    someone who knows chain.py (but not the seal key) would."""
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    rows = cur.execute(
        "select * from token_state_transitions where token_ref = %s order by version,"
        " transition_id", [ref]).fetchall()
    prev = chain.GENESIS_HASH
    for row in rows:
        row["prev_hash"] = prev
        row["row_hash"] = chain.row_hash(row)
        db.execute("update token_state_transitions set prev_hash = %s, row_hash = %s"
                   " where transition_id = %s", [prev, row["row_hash"], row["transition_id"]])
        prev = row["row_hash"]
    if rows:
        db.execute("update tokens set version = %s, state = %s, last_hash = %s"
                   " where token_ref = %s", [rows[-1]["version"], rows[-1]["to_state"], prev, ref])


def _sql(*statements: str, resealed: bool = False) -> Callable[[psycopg.Connection, str], None]:
    def apply(db: psycopg.Connection, ref: str) -> None:
        for statement in statements:
            db.execute(statement, {"ref": ref})
        if resealed:
            reseal(db, ref)
    return apply


def _copy_row(version: int, new_version: int, event: str) -> str:
    cols = ("token_ref, from_state, to_state, actor, reason_code, decision, idv_method,"
            " wallet_id, network, token_type, occurred_at, recorded_at, request_hash, prev_hash,"
            " row_hash, key_id, row_mac")
    return (f"insert into token_state_transitions (version, event_id, {cols})"
            f" select {new_version}, event_id || '{event}', {cols}"
            f" from token_state_transitions where token_ref = %(ref)s and version = {version}")


CASES: tuple[Case, ...] = (
    Case("reason edited in place", "edited_row", 7, _sql(
        "update token_state_transitions set reason_code = 'cardholder_request'"
        " where token_ref = %(ref)s and version = 7")),
    Case("reason edited and the chain re-hashed", "edited_row", 7, _sql(
        "update token_state_transitions set reason_code = 'cardholder_request'"
        " where token_ref = %(ref)s and version = 7", resealed=True)),
    Case("actor edited and re-hashed", "edited_row", 4, _sql(
        "update token_state_transitions set actor = 'system'"
        " where token_ref = %(ref)s and version = 4", resealed=True)),
    Case("last row deleted, token set back, re-hashed", "deleted_row", ROWS, _sql(
        f"delete from token_state_transitions where token_ref = %(ref)s and version = {ROWS}",
        resealed=True)),
    Case("a middle row deleted, later ones moved down, re-hashed", "deleted_row", 7, _sql(
        "delete from token_state_transitions where token_ref = %(ref)s and version = 7",
        "update token_state_transitions set version = version - 1"
        " where token_ref = %(ref)s and version > 7", resealed=True)),
    Case("a middle row deleted, nothing else", "deleted_row", 5, _sql(
        "delete from token_state_transitions where token_ref = %(ref)s and version = 5")),
    Case("a row inserted in the middle, later ones moved up, re-hashed", "inserted_row", 8,
         _sql("alter table token_state_transitions"
              " drop constraint if exists token_state_transitions_token_version_key",
              "update token_state_transitions set version = version + 1"
              " where token_ref = %(ref)s and version >= 8",
              _copy_row(9, 8, "-forged"), resealed=True)),
    Case("a row appended past the checkpoint", "inserted_row", ROWS + 1, _sql(
        _copy_row(ROWS, ROWS + 1, "-forged"), resealed=True)),
    Case("two rows swapped, re-hashed", "reordered_rows", 7, _sql(
        "alter table token_state_transitions"
        " drop constraint if exists token_state_transitions_token_version_key",
        "update token_state_transitions set version = case version when 7 then 8 else 7 end"
        " where token_ref = %(ref)s and version in (7, 8)", resealed=True)),
    Case("a second row with one version (a fork)", "forked_version", 6, _sql(
        "alter table token_state_transitions"
        " drop constraint if exists token_state_transitions_token_version_key",
        _copy_row(6, 6, "-fork"))),
    Case("the whole chain rewritten an hour earlier", "whole_chain_rewrite", 1, _sql(
        "update token_state_transitions set occurred_at = occurred_at - interval '1 hour'"
        " where token_ref = %(ref)s", resealed=True)),
    Case("a token erased", "token_erased", None, _sql(
        "delete from token_state_transitions where token_ref = %(ref)s",
        "delete from tokens where token_ref = %(ref)s")),
    Case("card_ref changed", "token_attributes", None, _sql(
        "update tokens set card_ref = 'cref-someone-else' where token_ref = %(ref)s"), False),
    Case("the token's state moved without a transition", "token_head", ROWS, _sql(
        "update tokens set state = 'TokenActive' where token_ref = %(ref)s"), False),
    Case("a row's seal stripped", "unsealed_row", 3, _sql(
        "update token_state_transitions set key_id = null, row_mac = null"
        " where token_ref = %(ref)s and version = 3"), False),
)


def record_history(client: httpx.Client, n_tokens: int) -> list[str]:
    """``n_tokens`` tokens, each with the ROWS-row HISTORY, through the service's API."""
    refs = []
    for _ in range(n_tokens):
        ref = new_ref("tamper")
        client.post("/v1/tokens", json=create_body(ref)).raise_for_status()
        for to_state, extra in HISTORY:
            extra = dict(extra)
            body = transition_body(to_state, actor=extra.pop("actor", "token_service"), **extra)
            client.post(f"/v1/tokens/{ref}/transitions", json=body).raise_for_status()
        refs.append(ref)
    return refs


def apply_all(admin_dsn: str, refs: list[str]) -> dict[str, Case]:
    """Apply CASES[i] to refs[i] as a superuser; return {token_ref: case}."""
    applied = {}
    with psycopg.connect(admin_dsn, autocommit=True) as db:
        _unlocked(db)
        for case, ref in zip(CASES, refs, strict=False):
            case.apply(db, ref)
            applied[ref] = case
    return applied
