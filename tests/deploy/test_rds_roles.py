"""The roles on RDS (deploy/postgres/README.md): ``tokenwatch db migrate`` run by an admin that is
not a superuser, as RDS's master user is (LOGIN, CREATEROLE, CREATEDB), in a database it owns;
afterwards the grants of ``state_service/roles.py`` hold exactly as they do under a superuser.

Two clusters: a fresh PostgreSQL 16 one (pgserver's bundled server), where the admin creates
the three roles itself as on a new RDS instance, and the session's server, whose roles already
exist (created by a superuser in other tests; PostgreSQL 15 lets a CREATEROLE admin manage
them). A role the admin did not create is beyond it on PostgreSQL 16+ (the README says what to
grant then)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from state_service import roles
from state_service.app import create_app
from state_service.lifecycle import State
from state_service.migrate import available, migrate_database
from state_service.server import ServiceThread
from tests.state_service.helpers import token_in
from tests.state_service.test_roles import READER_REFUSED, SERVICE_REFUSED, _refused
from tests.state_service.test_roles import (
    test_privileges_are_exactly_those_listed as privileges_are_exactly_those_listed,
)

CLI = [sys.executable, "-m", "tokenwatch.cli"]


@pytest.fixture(scope="module")
def fresh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A new PostgreSQL 16 cluster of this module's own (as a new RDS instance: no tokenwatch
    role exists yet); its superuser's DSN. Stopped and deleted at the end."""
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("rds") / "pgdata",
                                 cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextmanager
def rds_master(superuser_dsn: str) -> Iterator[tuple[str, str]]:
    """A role like RDS's master user (LOGIN CREATEROLE CREATEDB, no SUPERUSER) and a database
    it created (so it owns it and its schema public): the master's DSN of that database, and
    the superuser's. Both dropped afterwards."""
    master = f"rds_master_{uuid.uuid4().hex[:8]}"
    database = f"tokenwatch_rds_{uuid.uuid4().hex[:8]}"
    su = psycopg.connect(make_conninfo(superuser_dsn, dbname="postgres"), autocommit=True)
    try:
        su.execute(sql.SQL("create role {} login createrole createdb nosuperuser").format(
            sql.Identifier(master)))
        with psycopg.connect(make_conninfo(superuser_dsn, dbname="postgres", user=master),
                             autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
        yield (make_conninfo(superuser_dsn, dbname=database, user=master),
               make_conninfo(superuser_dsn, dbname=database))
    finally:
        su.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(database)))
        su.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(master)))
        su.close()


@pytest.fixture(params=["fresh PostgreSQL 16 cluster", "the session's server"])
def cluster(request, monkeypatch) -> tuple[str, bool]:
    """(a superuser's DSN, whether the cluster is new). On the session's server the roles are
    shared with every other test: no password is set on them."""
    if request.param.startswith("fresh"):
        monkeypatch.setenv(roles.PASSWORD_ENV[roles.SERVICE], f"pw-{uuid.uuid4().hex}")
        monkeypatch.setenv(roles.PASSWORD_ENV[roles.READER], f"pw-{uuid.uuid4().hex}")
        return request.getfixturevalue("fresh_cluster"), True
    for role in roles.LOGIN_ROLES:
        monkeypatch.delenv(roles.PASSWORD_ENV[role], raising=False)
    return request.getfixturevalue("pg_server").dsn, False


def test_migrate_as_a_non_superuser_admin_applies_the_roles(cluster):
    superuser_dsn, fresh = cluster
    with rds_master(superuser_dsn) as (master_dsn, superuser_db_dsn):
        with psycopg.connect(master_dsn) as conn:  # the admin is RDS's kind, not a superuser
            assert conn.execute("select rolsuper, rolcreaterole, rolcreatedb from pg_roles"
                                " where rolname = current_user").fetchone() == (False, True, True)
        report = migrate_database(master_dsn)

        assert [m.version for m in report.applied] == [m.version for m in available()]
        expected = "created" if fresh else "exists"
        assert report.roles.status == {role: expected for role in roles.ROLES}
        master = conninfo_to_dict(master_dsn)["user"]
        assert report.roles.memberships == [f"granted {roles.OWNER} to {master} (the admin)"]
        assert report.roles.passwords == (list(roles.LOGIN_ROLES) if fresh else [])
        assert report.roles.owned and report.roles.grants_changed

        # the next release: the operator's command, as deploy/postgres/README.md runs it
        env = os.environ | {"TOKENWATCH_PG_DSN": master_dsn, "COLUMNS": "200"}
        again = subprocess.run(CLI + ["db", "migrate"], capture_output=True, text=True,
                               env=env, timeout=180)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "grants: unchanged" in again.stdout, again.stdout
        assert "0 migration(s) applied" in again.stdout, again.stdout

        # as a superuser sees the catalogue: exactly the grants of roles.py
        with psycopg.connect(superuser_db_dsn, autocommit=True) as db:
            privileges_are_exactly_those_listed(db)
        _the_roles_are_in_force(master_dsn)


def _the_roles_are_in_force(master_dsn: str) -> None:
    """The service writes through the API under its role and is refused everything else; the
    reader reads and is refused every write (tests/state_service/test_roles.py's lists)."""
    key = f"rds-key-{uuid.uuid4().hex}"
    service_dsn = roles.role_dsn(master_dsn, roles.SERVICE)
    app = create_app(service_dsn, api_keys=[key], pool_size=2, run_migrations=False)
    with ServiceThread(app) as svc, httpx.Client(
            base_url=svc.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
        ref = token_in(client, State.TOKEN_ACTIVE)
    with psycopg.connect(service_dsn, autocommit=True) as service:
        assert service.execute("select current_user").fetchone()[0] == roles.SERVICE
        for statement in SERVICE_REFUSED.values():
            _refused(service, statement, {"ref": ref} if "%(ref)s" in statement else None)
        assert service.execute("show session_replication_role").fetchone()[0] == "origin"
    with psycopg.connect(roles.role_dsn(master_dsn, roles.READER), autocommit=True) as reader:
        assert reader.execute("select count(*) from token_state_transitions"
                              " where token_ref = %s", [ref]).fetchone()[0] == 6
        for statement in READER_REFUSED.values():
            _refused(reader, statement)
