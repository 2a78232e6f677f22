"""Least privilege in PostgreSQL (issue 12): the service and the readers connect with roles
that PostgreSQL itself stops from rewriting history or changing the schema.

Every refusal is asserted by SQLSTATE (42501 insufficient_privilege) and by PostgreSQL's own
privilege message, so a refusal by the append-only trigger (same SQLSTATE, "append-only")
does not pass for one by the grants.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from state_service import roles
from state_service.lifecycle import State
from state_service.migrate import available, ensure_role, migrate, migrate_database
from tests.state_service.helpers import token_in, transition_body
from tokenwatch.postgres import drop_database, ensure_database

CLI = [sys.executable, "-m", "tokenwatch.cli"]
#: PostgreSQL's messages for a privilege check (the trigger says "append-only" instead).
PRIVILEGE_MESSAGES = ("permission denied", "must be owner")


def _connect(dsn: str, role: str) -> psycopg.Connection:
    return psycopg.connect(roles.role_dsn(dsn, role), autocommit=True)


@pytest.fixture()
def as_service(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with _connect(pg_dsn, roles.SERVICE) as conn:
        assert conn.execute("select current_user").fetchone()[0] == roles.SERVICE
        yield conn


@pytest.fixture()
def as_reader(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with _connect(pg_dsn, roles.READER) as conn:
        assert conn.execute("select current_user").fetchone()[0] == roles.READER
        yield conn


def _refused(conn: psycopg.Connection, statement: str, params=None) -> psycopg.Error:
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
        conn.execute(statement, params)
    err = info.value
    assert err.sqlstate == "42501"
    assert err.diag.message_primary.startswith(PRIVILEGE_MESSAGES), err.diag.message_primary
    return err


def _log_rows(db: psycopg.Connection, ref: str) -> list[tuple]:
    return db.execute("select version, actor, to_state from token_state_transitions"
                      " where token_ref = %s order by version", [ref]).fetchall()


# -- the service role ---------------------------------------------------------------------
SERVICE_REFUSED = {
    "update the log": "update token_state_transitions set actor = 'system'"
                      " where token_ref = %(ref)s",
    "delete from the log": "delete from token_state_transitions where token_ref = %(ref)s",
    "truncate the log": "truncate token_state_transitions",
    "truncate the log, cascading": "truncate token_state_transitions, tokens cascade",
    "disable the log's triggers": "alter table token_state_transitions disable trigger all",
    "disable the append-only trigger":
        "alter table token_state_transitions disable trigger token_state_transitions_append_only",
    "turn triggers off for the session": "set session_replication_role = replica",
    "turn triggers off for the transaction": "set local session_replication_role = replica",
    "create a table": "create table evil (x int)",
    "create a temporary table": "create temp table evil (x int)",
    "create a schema": "create schema evil",
    "create a function": "create function evil() returns int language sql as 'select 1'",
    "drop the log": "drop table token_state_transitions",
    "drop tokens": "drop table tokens",
    "add a column": "alter table tokens add column evil int",
    "drop the trigger": "drop trigger token_state_transitions_append_only"
                        " on token_state_transitions",
    "replace the trigger function":
        "create or replace function tokenwatch_refuse_change() returns trigger"
        " language plpgsql as 'begin return new; end'",
    "move a token's card": "update tokens set card_ref = 'card-stolen' where token_ref = %(ref)s",
    "move a token's wallet": "update tokens set wallet_id = 'evil_pay' where token_ref = %(ref)s",
    "move a token's creation time": "update tokens set created_at = now()"
                                    " where token_ref = %(ref)s",
    "delete a token": "delete from tokens where token_ref = %(ref)s",
    "become the owner": f"set role {roles.OWNER}",
    "read the role catalogue's passwords": "select rolpassword from pg_authid",
    "set the identity sequence": "select setval(pg_get_serial_sequence("
                                 "'token_state_transitions', 'transition_id'), 1)",
}


@pytest.mark.parametrize("statement", SERVICE_REFUSED.values(), ids=SERVICE_REFUSED.keys())
def test_the_service_role_is_refused(client, db, as_service, statement):
    ref = token_in(client, State.TOKEN_ACTIVE)
    before = _log_rows(db, ref)
    token_before = db.execute("select * from tokens where token_ref = %s", [ref]).fetchone()
    _refused(as_service, statement, {"ref": ref} if "%(ref)s" in statement else None)
    assert _log_rows(db, ref) == before
    assert db.execute("select * from tokens where token_ref = %s", [ref]).fetchone() == \
        token_before
    if "session_replication_role" in statement:
        assert as_service.execute("show session_replication_role").fetchone()[0] == "origin"


def test_the_refusal_comes_before_the_trigger_even_inside_a_transaction(client, as_service):
    """Not even a statement the trigger would refuse gets that far: the grants stop it."""
    ref = token_in(client, State.TOKEN_REQUESTED)
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as info, as_service.transaction():
        as_service.execute("update token_state_transitions set actor = 'x' where token_ref = %s",
                           [ref])
    assert "append-only" not in str(info.value)
    assert "permission denied for table token_state_transitions" in str(info.value)


def test_the_service_can_do_what_a_transition_needs(client, as_service):
    """Exactly the statements the store runs, by hand, under the role: read, insert into both
    tables, lock the token row, move the transition columns, take an id from the sequence."""
    ref = token_in(client, State.PROVISION_INITIATED)
    with as_service.transaction():
        row = as_service.execute("select state, version, last_hash from tokens"
                                 " where token_ref = %s for update", [ref]).fetchone()
        assert row[:2] == ("ProvisionInitiated", 2)
        assert as_service.execute(
            "select nextval(pg_get_serial_sequence('token_state_transitions',"
            " 'transition_id'))").fetchone()[0] > 0
        assert as_service.execute(
            sql.SQL("update tokens set {} where token_ref = %s").format(sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(c), sql.Identifier(c))
                for c in roles.TRANSITION_COLUMNS)), [ref]).rowcount == 1
        raise psycopg.Rollback()  # leave the token as the API made it


def test_the_service_writes_tokens_and_transitions_under_its_role(client, db, service):
    """The fixture's service (every API test uses it) is connected as tokenwatch_service and
    still creates tokens and records transitions."""
    ref = token_in(client, State.TOKEN_SUSPENDED)
    r = client.post(f"/v1/tokens/{ref}/transitions",
                    json=transition_body(State.TOKEN_ACTIVE, actor="issuer"))
    assert r.status_code == 201, r.text
    assert [row[2] for row in _log_rows(db, ref)][-2:] == ["TokenSuspended", "TokenActive"]
    assert db.execute("select state, version from tokens where token_ref = %s",
                      [ref]).fetchone() == ("TokenActive", 8)
    users = {u for (u,) in db.execute(
        "select usename from pg_stat_activity where datname = current_database()"
        " and pid <> pg_backend_pid() and usename is not null")}
    assert roles.SERVICE in users  # the service's pool


# -- the reader role ----------------------------------------------------------------------
READER_REFUSED = {
    "insert a token": "insert into tokens values ('tok-r', 'apple_pay', 'visa', 'hce', 'c',"
                      " 'TokenRequested', 1, repeat('0', 64), now(), now())",
    "insert a transition": "insert into token_state_transitions (token_ref, version, event_id,"
                           " to_state, actor, wallet_id, network, token_type, occurred_at,"
                           " recorded_at, request_hash, prev_hash, row_hash) select token_ref,"
                           " 99, 'ev-r', 'TokenActive', 'wallet', wallet_id, network,"
                           " token_type, now(), now(), last_hash, last_hash, last_hash"
                           " from tokens limit 1",
    "update a token": "update tokens set state = 'TokenActive'",
    "update the log": "update token_state_transitions set actor = 'x'",
    "delete tokens": "delete from tokens",
    "delete from the log": "delete from token_state_transitions",
    "truncate the log": "truncate token_state_transitions",
    "lock a token for update": "select 1 from tokens for update",
    "take a transition id": "select nextval(pg_get_serial_sequence('token_state_transitions',"
                            " 'transition_id'))",
    "create a table": "create table evil (x int)",
    "create a temporary table": "create temp table evil (x int)",
    "record a migration": "insert into schema_migrations values (999, 'x', 'x')",
    "turn triggers off": "set session_replication_role = replica",
}


@pytest.mark.parametrize("statement", READER_REFUSED.values(), ids=READER_REFUSED.keys())
def test_the_reader_role_is_refused(client, as_reader, statement):
    token_in(client, State.TOKEN_REQUESTED)  # something to refuse changing
    _refused(as_reader, statement)


def test_the_reader_reads(client, as_reader):
    ref = token_in(client, State.PROVISION_PENDING)
    assert as_reader.execute("select count(*) from token_state_transitions where token_ref = %s",
                             [ref]).fetchone()[0] == 3
    assert as_reader.execute("select state from tokens where token_ref = %s",
                             [ref]).fetchone()[0] == "ProvisionPending"
    assert as_reader.execute("select pg_snapshot_xmin(pg_current_snapshot())").fetchone()[0]


def test_ingestion_and_reconciliation_read_as_the_reader(source_dsn, warehouse_factory):
    from ingestion.sources.transitions import load_transitions
    from quality.reconcile import reconcile_transitions
    from tests.quality.conftest import write_token

    write_token(source_dsn, "tok-a", ["TokenRequested", "ProvisionInitiated"])
    reader = roles.role_dsn(source_dsn, roles.READER)
    wh = warehouse_factory("duckdb")
    loaded, deadline = 0, time.monotonic() + 90
    while loaded < 2 and time.monotonic() < deadline:  # xmin is cluster-wide: may lag
        loaded += load_transitions(reader, wh).rows_loaded
        if loaded < 2:
            time.sleep(0.5)
    assert loaded == 2
    assert reconcile_transitions(reader, wh).passed


# -- the grants, as the catalogue has them ------------------------------------------------
def _has(db, fn: str, *args) -> bool:
    return db.execute(f"select {fn}({', '.join(['%s'] * len(args))})", list(args)).fetchone()[0]


def test_privileges_are_exactly_those_listed(db):
    columns = [c for (c,) in db.execute(
        "select attname from pg_attribute where attrelid = 'tokens'::regclass and attnum > 0"
        " and not attisdropped order by attnum")]
    assert set(roles.TRANSITION_COLUMNS) < set(columns)
    database = db.execute("select current_database()").fetchone()[0]
    for role in roles.LOGIN_ROLES:
        for table in ("tokens", "token_state_transitions", "schema_migrations"):
            for privilege in ("UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"):
                assert not _has(db, "has_table_privilege", role, table, privilege), \
                    (role, table, privilege)
            assert _has(db, "has_table_privilege", role, table, "SELECT") == (
                role == roles.READER or table in roles.SERVICE_TABLE_PRIVILEGES), (role, table)
        assert not _has(db, "has_schema_privilege", role, "public", "CREATE")
        assert _has(db, "has_schema_privilege", role, "public", "USAGE")
        for privilege in ("CREATE", "TEMPORARY"):
            assert not _has(db, "has_database_privilege", role, database, privilege)
        assert not _has(db, "pg_has_role", role, roles.OWNER, "MEMBER")
    for table in ("tokens", "token_state_transitions"):
        assert _has(db, "has_table_privilege", roles.SERVICE, table, "INSERT")
        assert not _has(db, "has_table_privilege", roles.READER, table, "INSERT")
    assert not _has(db, "has_table_privilege", roles.SERVICE, "schema_migrations", "INSERT")
    for column in columns:
        assert _has(db, "has_column_privilege", roles.SERVICE, "tokens", column, "UPDATE") == (
            column in roles.TRANSITION_COLUMNS), column
        assert not _has(db, "has_column_privilege", roles.READER, "tokens", column, "UPDATE")
    sequence = db.execute("select pg_get_serial_sequence('token_state_transitions',"
                          " 'transition_id')").fetchone()[0]
    assert _has(db, "has_sequence_privilege", roles.SERVICE, sequence, "USAGE")
    assert not _has(db, "has_sequence_privilege", roles.SERVICE, sequence, "UPDATE")
    assert not _has(db, "has_sequence_privilege", roles.READER, sequence, "USAGE")
    owners = db.execute(
        "select distinct pg_get_userbyid(relowner) from pg_class"
        " where relnamespace = 'public'::regnamespace union select distinct"
        " pg_get_userbyid(proowner) from pg_proc where pronamespace = 'public'::regnamespace"
    ).fetchall()
    assert owners == [(roles.OWNER,)]
    attrs = {r[0]: r[1:] for r in db.execute(
        "select rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication,"
        " rolbypassrls from pg_roles where rolname = any(%s)", [list(roles.ROLES)])}
    assert attrs == {roles.OWNER: (False,) + (False,) * 5,
                     roles.SERVICE: (True,) + (False,) * 5,
                     roles.READER: (True,) + (False,) * 5}


def test_a_grant_given_by_hand_is_taken_back_by_the_next_migrate(pg_dsn, db, as_service):
    db.execute(f"grant delete, truncate on token_state_transitions to {roles.SERVICE}")
    db.execute(f"grant update (card_ref) on tokens to {roles.SERVICE}")
    db.execute("grant select on tokens to public")
    try:
        report = migrate_database(pg_dsn)
    finally:  # never leave the shared session database over-privileged
        db.execute(f"revoke delete, truncate on token_state_transitions from {roles.SERVICE}")
        db.execute(f"revoke update (card_ref) on tokens from {roles.SERVICE}")
        db.execute("revoke select on tokens from public")
    assert report.roles.grants_changed
    assert not _has(db, "has_table_privilege", "public", "tokens", "SELECT")
    _refused(as_service, "truncate token_state_transitions")
    _refused(as_service, "update tokens set card_ref = 'x'")


# -- migrate sets them up, idempotently and concurrently ----------------------------------
@pytest.fixture()
def two_databases(pg_server) -> Iterator[list[str]]:
    names = [f"tokenwatch_roles_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    try:
        yield [ensure_database(pg_server, n) for n in names]
    finally:
        for name in names:
            drop_database(pg_server, name)


def test_migrate_twice_and_on_two_databases_at_once(two_databases):
    barrier, reports, failures = threading.Barrier(2), {}, []

    def run(dsn: str) -> None:
        try:
            barrier.wait(timeout=30)
            reports[dsn] = migrate_database(dsn)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=[dsn]) for dsn in two_databases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failures == []
    for dsn in two_databases:
        first = reports[dsn]
        assert [m.version for m in first.applied] == [m.version for m in available()]
        assert set(first.roles.status) == set(roles.ROLES)
        assert first.roles.grants_changed and first.roles.owned
        again = migrate_database(dsn)
        assert again.applied == [] and again.roles.owned == []
        assert set(again.roles.status.values()) == {"exists"}
        assert not again.roles.grants_changed
        assert migrate(dsn) == []
        with _connect(dsn, roles.SERVICE) as conn:  # the roles work in both databases
            assert conn.execute("select count(*) from tokens").fetchone()[0] == 0
            _refused(conn, "truncate token_state_transitions")
        with _connect(dsn, roles.READER) as conn:
            _refused(conn, "delete from tokens")


def test_role_creation_is_race_safe_across_databases(two_databases, db):
    """Two migrations on two databases creating the same (new) role at the same moment: one
    creates it, the other finds it; neither fails. A few rounds, to meet the race itself."""
    for _ in range(5):
        name = f"tw_race_{uuid.uuid4().hex[:10]}"
        barrier, results, failures = threading.Barrier(2), [], []

        def create(dsn: str, name=name, barrier=barrier, results=results,
                   failures=failures) -> None:
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    barrier.wait(timeout=30)
                    results.append(ensure_role(conn, name, login=True))
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=create, args=[dsn]) for dsn in two_databases]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert failures == []
            assert sorted(results) == ["created", "exists"]
        finally:
            db.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))


def test_a_role_with_too_much_power_is_corrected(db):
    name = f"tw_power_{uuid.uuid4().hex[:10]}"
    db.execute(sql.SQL("create role {} login createdb bypassrls").format(sql.Identifier(name)))
    try:
        assert ensure_role(db, name, login=False) == \
            "corrected (was login, createdb, bypassrls)"
        assert db.execute("select rolcanlogin, rolcreatedb, rolbypassrls from pg_roles"
                          " where rolname = %s", [name]).fetchone() == (False, False, False)
        assert ensure_role(db, name, login=False) == "exists"
    finally:
        db.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def test_passwords_come_from_the_environment(pg_dsn, db, monkeypatch):
    secret = f"pw-{uuid.uuid4().hex}"
    monkeypatch.setenv(roles.PASSWORD_ENV[roles.SERVICE], secret)
    monkeypatch.delenv(roles.PASSWORD_ENV[roles.READER], raising=False)
    try:
        report = migrate_database(pg_dsn)
        assert report.roles.passwords == [roles.SERVICE]
        stored = db.execute("select rolpassword from pg_authid where rolname = %s",
                            [roles.SERVICE]).fetchone()[0]
        assert stored.startswith("SCRAM-SHA-256$") and secret not in stored  # sent hashed
        assert conninfo_to_dict(roles.role_dsn(pg_dsn, roles.SERVICE))["password"] == secret
    finally:  # the cluster's roles are shared: leave no password behind
        db.execute(sql.SQL("alter role {} password null").format(
            sql.Identifier(roles.SERVICE)))
    monkeypatch.delenv(roles.PASSWORD_ENV[roles.SERVICE])
    assert migrate_database(pg_dsn).roles.passwords == []


def test_passwords_set_by_two_migrations_at_once(two_databases, db, monkeypatch):
    """Two databases' migrations setting the same role's password at the same moment: the
    second update of the role would fail with "tuple concurrently updated"; it is retried."""
    monkeypatch.setenv(roles.PASSWORD_ENV[roles.READER], f"pw-{uuid.uuid4().hex}")
    barrier, failures, reports = threading.Barrier(2), [], []

    def run(dsn: str) -> None:
        try:
            barrier.wait(timeout=30)
            reports.append(migrate_database(dsn))
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=[dsn]) for dsn in two_databases]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        db.execute(sql.SQL("alter role {} password null").format(sql.Identifier(roles.READER)))
    assert failures == []
    assert [r.roles.passwords for r in reports] == [[roles.READER], [roles.READER]]


def test_db_migrate_says_what_it_did(pg_dsn):
    env = os.environ | {"TOKENWATCH_PG_DSN": pg_dsn, "COLUMNS": "200"}
    r = subprocess.run(CLI + ["db", "migrate"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    for line in (f"role {roles.OWNER} (NOLOGIN): exists",
                 f"role {roles.SERVICE} (LOGIN): exists",
                 f"role {roles.READER} (LOGIN): exists",
                 f"UPDATE ({', '.join(roles.TRANSITION_COLUMNS)}) on tokens",
                 "SELECT, INSERT on token_state_transitions",
                 "SELECT on every table in schema public",
                 "grants: unchanged", "0 migration(s) applied; the database is up to date"):
        assert line in r.stdout, r.stdout


def test_db_migrate_on_a_new_database_creates_and_grants(pg_server):
    name = f"tokenwatch_roles_{uuid.uuid4().hex[:10]}"
    dsn = ensure_database(pg_server, name)
    try:
        env = os.environ | {"TOKENWATCH_PG_DSN": dsn, "COLUMNS": "200"}
        r = subprocess.run(CLI + ["db", "migrate"], capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert "applied 0002_roles" in r.stdout
        assert f"handed to {roles.OWNER}: " in r.stdout and "table public.tokens" in r.stdout
        assert "grants: applied" in r.stdout
    finally:
        drop_database(pg_server, name)


# -- how the application finds its DSNs --------------------------------------------------
def test_role_dsn_replaces_user_and_password(monkeypatch):
    monkeypatch.delenv(roles.PASSWORD_ENV[roles.SERVICE], raising=False)
    monkeypatch.setenv(roles.PASSWORD_ENV[roles.READER], "reader-secret")
    admin = "host=db.example port=5433 dbname=tokenwatch user=master password=master-pw " \
            "sslmode=require"
    service = conninfo_to_dict(roles.role_dsn(admin, roles.SERVICE))
    assert service == {"host": "db.example", "port": "5433", "dbname": "tokenwatch",
                       "user": roles.SERVICE, "sslmode": "require"}
    reader = conninfo_to_dict(roles.role_dsn(
        "postgresql://master:master-pw@db.example:5433/tokenwatch?sslmode=require",
        roles.READER))
    assert reader["user"] == roles.READER and reader["password"] == "reader-secret"
    assert reader["dbname"] == "tokenwatch" and reader["sslmode"] == "require"
    with pytest.raises(ValueError, match="not a login role"):
        roles.role_dsn(admin, roles.OWNER)


def test_explicit_role_dsns_win_and_never_resolve_the_admin(monkeypatch):
    from state_service import server

    monkeypatch.setenv("TOKENWATCH_PG_DSN", "host=admin.example dbname=tokenwatch user=master")
    monkeypatch.delenv(roles.DSN_ENV[roles.SERVICE], raising=False)
    monkeypatch.delenv(roles.DSN_ENV[roles.READER], raising=False)
    monkeypatch.delenv(roles.PASSWORD_ENV[roles.SERVICE], raising=False)
    assert conninfo_to_dict(server.service_dsn_from_env())["user"] == roles.SERVICE
    assert conninfo_to_dict(server.reader_dsn_from_env())["user"] == roles.READER
    assert server.admin_dsn_available()

    explicit = "host=rds.example dbname=tokenwatch user=app_service password=x"
    monkeypatch.setenv(roles.DSN_ENV[roles.SERVICE], explicit)
    monkeypatch.delenv("TOKENWATCH_PG_DSN")
    monkeypatch.setattr(server, "dsn_from_env", lambda: pytest.fail("resolved the admin"))
    assert server.service_dsn_from_env() == explicit
    assert not server.admin_dsn_available()  # serve leaves migrations to the admin
    assert not server.migrate_if_admin()


def test_ingestion_in_prod_reads_as_the_reader(monkeypatch):
    from ingestion.world import world_from_env

    monkeypatch.setenv("TOKENWATCH_ENV", "prod")
    monkeypatch.setenv("TOKENWATCH_BUCKET", "lake")
    monkeypatch.setenv("TOKENWATCH_STREAM", "events")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv(roles.DSN_ENV[roles.READER], raising=False)
    monkeypatch.delenv("TOKENWATCH_PG_DSN", raising=False)
    with pytest.raises(ValueError, match="TOKENWATCH_READER_PG_DSN"):
        world_from_env()
    monkeypatch.setenv("TOKENWATCH_PG_DSN", "host=rds.example dbname=tokenwatch user=master")
    assert conninfo_to_dict(world_from_env().pg_dsn)["user"] == roles.READER
    monkeypatch.setenv(roles.DSN_ENV[roles.READER], "host=rds.example user=app_reader")
    assert world_from_env().pg_dsn == "host=rds.example user=app_reader"


def test_the_local_stack_is_read_as_the_reader(local_stack, monkeypatch):
    from ingestion.world import world_from_env

    monkeypatch.delenv(roles.DSN_ENV[roles.READER], raising=False)
    monkeypatch.delenv("TOKENWATCH_ENV", raising=False)

    dsn = world_from_env().pg_dsn
    assert conninfo_to_dict(dsn)["user"] == roles.READER
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select current_user").fetchone()[0] == roles.READER


def test_audit_verify_reads_with_the_reader_dsn_alone(pg_dsn):
    """With only a reader DSN that works (the admin's points nowhere), the audit runs."""
    env = os.environ | {"TOKENWATCH_PG_DSN": "host=127.0.0.1 port=1 dbname=x connect_timeout=1",
                        roles.DSN_ENV[roles.READER]: roles.role_dsn(pg_dsn, roles.READER)}
    r = subprocess.run(CLI + ["audit", "verify", "--no-checkpoints"], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode in (0, 1) and "verified" in r.stdout, r.stdout + r.stderr
