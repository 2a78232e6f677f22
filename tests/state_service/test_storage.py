"""Storage guarantees enforced by PostgreSQL itself, and the audit hash chain."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading

import psycopg
import pytest

from state_service.audit import verify_log
from state_service.lifecycle import State
from state_service.migrate import available, migrate
from tests.state_service.helpers import token_in, transition_body
from tokenwatch import config


@pytest.mark.parametrize("statement", [
    "update token_state_transitions set actor = 'system' where token_ref = %s",
    "delete from token_state_transitions where token_ref = %s",
])
def test_log_refuses_update_and_delete(client, db, statement):
    ref = token_in(client, State.TOKEN_ACTIVE)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        db.execute(statement, [ref])
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        db.execute("truncate token_state_transitions cascade")
    assert db.execute("select count(*), min(actor) from token_state_transitions "
                      "where token_ref = %s", [ref]).fetchone()[0] == 6


def test_chain_verification_names_a_row_altered_by_a_superuser(client, pg_dsn, db):
    ref = token_in(client, State.TOKEN_SUSPENDED)
    assert verify_log(pg_dsn, config.chain_keys()[1]).ok
    # a superuser bypasses the trigger and rewrites history
    with db.transaction():
        db.execute("set local session_replication_role = replica")
        db.execute("update token_state_transitions set reason_code = 'cardholder_request' "
                   "where token_ref = %s and version = 7", [ref])
    try:
        result = verify_log(pg_dsn, config.chain_keys()[1])
        assert not result.ok
        assert [(f.token_ref, f.version, f.kind) for f in result.findings] == [
            (ref, 7, "edited_row")]
        cli = subprocess.run([sys.executable, "-m", "tokenwatch.cli", "audit", "verify",
                              "--no-checkpoints"],
                             env=os.environ | {"TOKENWATCH_PG_DSN": pg_dsn},
                             capture_output=True, text=True, timeout=120)
        assert cli.returncode == 1, cli.stdout + cli.stderr
        assert ref in cli.stdout and "TAMPERED" in cli.stdout
    finally:  # put the row back so the shared database verifies again
        with db.transaction():
            db.execute("set local session_replication_role = replica")
            db.execute("update token_state_transitions set reason_code = 'device_lost' "
                       "where token_ref = %s and version = 7", [ref])
    assert verify_log(pg_dsn, config.chain_keys()[1]).ok


def test_recorded_at_comes_from_the_database_and_rows_chain(client, db):
    ref = token_in(client, State.TOKEN_ACTIVE)
    rows = db.execute("select version, recorded_at, prev_hash, row_hash, occurred_at "
                      "from token_state_transitions where token_ref = %s order by version",
                      [ref]).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(a[1] < b[1] for a, b in itertools.pairwise(rows))
    assert all(b[2] == a[3] for a, b in itertools.pairwise(rows))
    # occurred_at is the client's clock (2026-11-01 in the helpers), recorded_at the server's
    assert all(r[1] != r[4] for r in rows)


def test_late_committing_transaction_is_below_the_reader_xmin_only_after_commit(
        client, pg_dsn, db):
    """The incremental-read contract: a reader stopping at its snapshot's xmin never skips
    a transaction that commits late."""
    early = token_in(client, State.TOKEN_REQUESTED)
    late = token_in(client, State.TOKEN_REQUESTED)
    # open a writer transaction and hold it
    slow = psycopg.connect(pg_dsn)
    slow.execute("select version from tokens where token_ref = %s for update", [late])
    slow_xid = int(slow.execute("select pg_current_xact_id()::text").fetchone()[0])
    # a later transaction commits first, through the service
    client.post(f"/v1/tokens/{early}/transitions",
                json=transition_body(State.PROVISION_INITIATED)).raise_for_status()
    fast_xid = int(db.execute("select xact_id::text from token_state_transitions "
                              "where token_ref = %s and version = 2", [early]).fetchone()[0])
    assert fast_xid > slow_xid
    xmin = int(db.execute("select pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()[0])
    assert xmin <= slow_xid  # the reader must stop before the open transaction
    slow.rollback()
    slow.close()
    xmin = int(db.execute("select pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()[0])
    assert xmin > fast_xid


def test_migrations_are_versioned_and_idempotent(pg_dsn, db):
    assert migrate(pg_dsn) == []
    versions = [r[0] for r in db.execute("select version from schema_migrations order by 1")]
    assert versions == [m.version for m in available()]
    # concurrent migrators serialise on the advisory lock
    errors: list[Exception] = []

    def run():
        try:
            migrate(pg_dsn)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
