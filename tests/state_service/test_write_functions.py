"""The write path's server-side functions (migration 0005): the lifecycle they enforce is the
one definition's (the drift test), the hash they compute is chain.py's byte for byte (the
identity test), and only the service may call them, with nothing but its own rights."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta, timezone

import httpx
import psycopg
import pytest

from state_service import chain, lifecycle, roles
from state_service.lifecycle import State
from state_service.migrate import database_pairs, lifecycle_pairs, migrate
from tests.state_service.helpers import create_body, new_ref, token_in, transition_body
from tokenwatch import config

PREPARE = "select * from tokenwatch_prepare_transition(%s, %s, %s, %s, %s, %s, %s, %s, %s)"


def _as(dsn: str, role: str) -> psycopg.Connection:
    return psycopg.connect(roles.role_dsn(dsn, role))


# -- the drift test ---------------------------------------------------------------------------
def test_the_database_enforces_exactly_the_lifecycle_of_lifecycle_py(db):
    assert database_pairs(db) == lifecycle_pairs()
    assert len(lifecycle_pairs()) == len(lifecycle.legal_pairs()) > 0


def test_the_function_decides_every_pair_as_lifecycle_py_does(pg_dsn):
    """Each of the 100 (from, to) pairs, on a token put in ``from`` by hand: the function
    readies a row for exactly the legal ones and refuses the rest, naming the current state."""
    with _as(pg_dsn, roles.SERVICE) as svc, psycopg.connect(pg_dsn, autocommit=True) as admin:
        ref = new_ref("pairs")
        admin.execute(
            "insert into tokens (token_ref, wallet_id, network, token_type, card_ref, state,"
            " version, last_hash, created_at, updated_at) values (%s, 'apple_pay', 'visa',"
            " 'hce', 'c', 'TokenRequested', 1, %s, now(), now())", [ref, chain.GENESIS_HASH])
        try:
            for from_state in State:
                admin.execute("update tokens set state = %s where token_ref = %s",
                              [from_state.value, ref])
                for to_state in State:
                    outcome, state, *_ = svc.execute(PREPARE, [
                        ref, uuid.uuid4().hex, to_state.value, "issuer", None, None, None,
                        datetime.now(UTC), "0" * 64]).fetchone()
                    svc.rollback()
                    if lifecycle.is_legal(from_state, to_state):
                        assert (outcome, state) == ("new", to_state.value)
                    else:
                        assert (outcome, state) == ("illegal_transition", from_state.value), \
                            (from_state, to_state)
        finally:
            admin.execute("delete from tokens where token_ref = %s", [ref])


def test_a_pair_changed_by_hand_is_put_back_by_the_next_migrate(pg_dsn, db, client):
    """An operator (or an attacker with the admin's rights) who adds an illegal pair to the
    table gets it enforced only until the next migrate, which rewrites it from lifecycle.py."""
    ref = token_in(client, State.TOKEN_EXPIRED)
    db.execute("insert into lifecycle_transitions values ('TokenExpired', 'TokenActive')")
    try:
        assert database_pairs(db) != lifecycle_pairs()
        migrate(pg_dsn)
        assert database_pairs(db) == lifecycle_pairs()
    finally:
        db.execute("delete from lifecycle_transitions where from_state = 'TokenExpired'")
    r = client.post(f"/v1/tokens/{ref}/transitions", json=transition_body(State.TOKEN_ACTIVE))
    assert r.status_code == 409 and r.json()["error"] == "illegal_transition"


# -- the chain identity test ------------------------------------------------------------------
_CANONICAL = ("select encode(sha256(convert_to(tokenwatch_canonical(%s, %s, %s, %s, %s, %s, %s,"
              " %s, %s, %s, %s, %s, %s, %s, %s), 'UTF8')), 'hex'), tokenwatch_canonical(%s, %s,"
              " %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
_TIMES = [
    datetime(2000, 1, 1, 0, 0, tzinfo=UTC),
    datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, 0, 5, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
    datetime(2026, 11, 24, 10, 0, 0, 120000, tzinfo=timezone(timedelta(hours=14))),
]


@pytest.mark.parametrize("case", range(8))
def test_the_sql_hash_is_chain_py_s_byte_for_byte(db, case):
    row = {"token_ref": f"tok.{case}:a-b_c", "version": 10 ** case, "event_id": f"ev-{case}",
           "from_state": None if case % 2 else "TokenActive", "to_state": "TokenSuspended",
           "actor": "issuer", "reason_code": None if case % 3 else "device_lost",
           "decision": "green" if case == 4 else None,
           "idv_method": "otp_sms" if case == 5 else None, "wallet_id": "apple_pay",
           "network": "mastercard", "token_type": "card_on_file",
           "occurred_at": _TIMES[case % 4], "recorded_at": _TIMES[(case + 1) % 4],
           "prev_hash": chain.GENESIS_HASH if case == 0 else hashlib.sha256(
               bytes([case])).hexdigest()}
    args = [row[f] for f in chain.CANONICAL_FIELDS]
    sql_hash, sql_text = db.execute(_CANONICAL, args + args).fetchone()
    assert sql_text == chain.canonical(row)
    assert sql_hash == chain.row_hash(row)


def test_every_row_the_service_writes_hashes_and_seals_as_chain_py_says(client, db):
    """Creation, transitions with and without reason/decision/idv: the stored row_hash is
    chain.row_hash of the stored row, each row chains from the one before, and its seal
    verifies under the service's key."""
    ref = token_in(client, State.TOKEN_SUSPENDED)
    r = client.post(f"/v1/tokens/{ref}/transitions", json=transition_body(
        State.TOKEN_ACTIVE, reason_code="not_fraud"))
    assert r.status_code == 201
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute("select *, xact_id::text as xact_id from token_state_transitions"
                           " where token_ref = %s order by version", [ref]).fetchall()
        token = cur.execute("select * from tokens where token_ref = %s", [ref]).fetchone()
    key_id, keyring = config.chain_keys()
    prev = chain.GENESIS_HASH
    assert [r["version"] for r in rows] == list(range(1, len(rows) + 1)) and len(rows) == 8
    for row in rows:
        assert row["prev_hash"] == prev
        assert row["row_hash"] == chain.row_hash(row)
        assert row["key_id"] == key_id
        assert row["row_mac"] == chain.row_mac(keyring[key_id], row)
        prev = row["row_hash"]
    assert token["last_hash"] == prev and token["version"] == len(rows)
    assert token["attrs_mac"] == chain.attrs_mac(keyring[key_id], token)


# -- rights -----------------------------------------------------------------------------------
def test_only_the_service_may_call_the_write_functions_and_only_with_its_own_rights(pg_dsn, db):
    for fn in roles.SERVICE_FUNCTIONS:
        assert db.execute("select has_function_privilege(%s, %s, 'EXECUTE')",
                          [roles.SERVICE, fn]).fetchone()[0], fn
        assert not db.execute("select has_function_privilege(%s, %s, 'EXECUTE')",
                              [roles.READER, fn]).fetchone()[0], fn
        assert not db.execute("select has_function_privilege('public', %s, 'EXECUTE')",
                              [fn]).fetchone()[0], fn
        definer, = db.execute("select prosecdef from pg_proc where oid = %s::regprocedure",
                              [fn]).fetchone()
        assert definer is False, f"{fn} must run with the caller's rights"
    with _as(pg_dsn, roles.READER) as reader, pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute(PREPARE, [new_ref(), "e", "TokenActive", "issuer", None, None, None,
                                 datetime.now(UTC), "0" * 64])


def test_the_service_cannot_use_apply_to_rewrite_history(pg_dsn, client, db):
    """apply_transition is an INSERT and a token move under the caller's rights: a second row
    for a version that exists is refused by the log's constraints, and nothing changes."""
    ref = new_ref("apply")
    client.post("/v1/tokens", json=create_body(ref)).raise_for_status()
    before = db.execute("select count(*) from token_state_transitions where token_ref = %s",
                        [ref]).fetchone()
    with _as(pg_dsn, roles.SERVICE) as svc, pytest.raises(psycopg.errors.UniqueViolation):
        svc.execute(
            "select tokenwatch_apply_transition(nextval('token_state_transitions_transition_id"
            "_seq'), pg_current_xact_id()::text, %s, 1, %s, null, 'TokenActive', 'issuer', null,"
            " null, null, 'apple_pay', 'visa', 'hce', now(), now(), %s, %s, %s, 'k', %s)",
            [ref, uuid.uuid4().hex, "0" * 64, "0" * 64, "0" * 64, "0" * 64])
    assert db.execute("select count(*) from token_state_transitions where token_ref = %s",
                      [ref]).fetchone() == before


def test_an_offset_postgresql_cannot_read_as_text_is_still_recorded(client, db):
    """RFC 3339 allows offsets up to 23:59; PostgreSQL's text input stops at 15:59. The write
    messages bind values as literals, so they are sent in UTC (found by schemathesis)."""
    ref = new_ref("offset")
    r = client.post("/v1/tokens", json=create_body(ref, occurred_at="2026-11-01T23:30:00+23:59"))
    assert r.status_code == 201, r.text
    r = client.post(f"/v1/tokens/{ref}/transitions", json=transition_body(
        State.PROVISION_INITIATED) | {"occurred_at": "2026-11-02T00:00:00.5-23:59"})
    assert r.status_code == 201, r.text
    got = [o for (o,) in db.execute("select occurred_at from token_state_transitions where"
                                    " token_ref = %s order by version", [ref])]
    assert got == [datetime(2026, 10, 31, 23, 31, tzinfo=UTC),
                   datetime(2026, 11, 2, 23, 59, 0, 500000, tzinfo=UTC)]


def test_the_prepared_statements_survive_refusals_batches_and_reads(service_dsn):
    """On one connection: batches, reads, refusals (each a ROLLBACK) and writes, in turns.
    psycopg, preparing statements of its own, answers a ROLLBACK with DEALLOCATE ALL, which took
    the store's prepared write statements with it (500s in the full suite): it must not."""
    from state_service.app import create_app
    from state_service.server import ServiceThread

    app = create_app(service_dsn, api_keys=["k" * 16], run_migrations=False, pool_size=1)
    headers = {"Authorization": "Bearer " + "k" * 16}
    with ServiceThread(app) as svc, httpx.Client(base_url=svc.url, headers=headers,
                                                 timeout=30) as c:
        for i in range(8):
            ref = new_ref(f"turns{i}")
            items = [{"op": "create", **create_body(ref)}]
            assert c.post("/v1/batch", json={"items": items}).json()["results"][0][
                "status"] == 201
            assert c.get(f"/v1/tokens/{ref}").status_code == 200
            illegal = c.post(f"/v1/tokens/{ref}/transitions",
                             json=transition_body(State.TOKEN_ACTIVE))
            assert illegal.status_code == 409
            assert c.post(f"/v1/tokens/{ref}/transitions",
                          json=transition_body(State.PROVISION_INITIATED)).status_code == 201
            assert c.post("/v1/tokens", json=create_body(new_ref("turns"))).status_code == 201
    assert app.state.store.lost_statements == 0  # not even once recovered by a retry
