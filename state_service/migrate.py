"""Versioned SQL migrations: ``migrations/NNNN_name.sql``, applied once each, in order; then the
roles and their grants (``state_service.roles``), on every run.

Safe to run from several processes at once (an advisory lock serialises them on a database,
and the cluster-wide role creation tolerates a concurrent creator on another database), and
refuses to continue when an applied migration's file has changed since (its checksum differs).

Run it as an admin: a superuser, or (RDS) a role with CREATEROLE that owns the database. Every
run, after the SQL migrations:

1. ``tokenwatch_owner`` (NOLOGIN), ``tokenwatch_service`` and ``tokenwatch_reader`` (LOGIN)
   exist, with no superuser, createdb, createrole, replication or bypassrls attribute; their
   passwords are set from ``TOKENWATCH_SERVICE_PG_PASSWORD`` / ``TOKENWATCH_READER_PG_PASSWORD``
   when those are set (sent hashed, never stored by tokenwatch). A non-superuser admin is made
   a member of the owner (to hand objects to it and alter them later).
2. Every table, sequence, view, type and function in the schema (extension members aside)
   belongs to ``tokenwatch_owner``: objects a migration creates are handed over here.
3. The service's and the reader's privileges are revoked and granted again, exactly as
   ``state_service.roles`` lists them (the one place to extend them), in one transaction.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import errors, sql

from state_service import lifecycle, roles

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x746F6B656E  # "token"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
#: The attributes each role must have (pg_roles column -> value); LOGIN differs by role.
_DENIED_ATTRIBUTES = {"rolsuper": "superuser", "rolcreatedb": "createdb",
                      "rolcreaterole": "createrole", "rolreplication": "replication",
                      "rolbypassrls": "bypassrls"}


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass
class RolesReport:
    """What the role step found and did, for ``tokenwatch db migrate`` to print."""

    status: dict[str, str] = field(default_factory=dict)  # role -> "created", "exists", ...
    passwords: list[str] = field(default_factory=list)  # roles whose password was set
    memberships: list[str] = field(default_factory=list)  # role memberships granted/revoked
    owned: list[str] = field(default_factory=list)  # objects handed to the owner
    grants_changed: bool = False  # the privileges differed from roles.py's before this run
    privileges: dict[str, list[str]] = field(default_factory=roles.privileges_summary)
    lifecycle_changed: bool = False  # lifecycle_transitions was rewritten from lifecycle.py


@dataclass
class MigrateReport:
    applied: list[Migration]
    roles: RolesReport


def available() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    return found


def migrate(dsn: str) -> list[Migration]:
    """Apply every pending migration to the database at ``dsn`` and set up the roles; return
    the migrations applied."""
    return migrate_database(dsn).applied


def migrate_database(dsn: str) -> MigrateReport:
    """``migrate``, with a report of what the role step did as well."""
    applied_now: list[Migration] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", [_LOCK_KEY])
        try:
            conn.execute(
                "create table if not exists schema_migrations ("
                " version integer primary key, name text not null, checksum text not null,"
                " applied_at timestamptz not null default now())"
            )
            report = ensure_roles(conn)
            done = dict(conn.execute("select version, checksum from schema_migrations").fetchall())
            for mig in available():
                if mig.version in done:
                    if done[mig.version] != mig.checksum:
                        raise MigrationError(
                            f"migration {mig.version:04d}_{mig.name}.sql changed after it was "
                            "applied; add a new migration instead of editing an applied one")
                    continue
                with conn.transaction():
                    conn.execute(mig.sql.encode())
                    conn.execute(
                        "insert into schema_migrations (version, name, checksum)"
                        " values (%s, %s, %s)", [mig.version, mig.name, mig.checksum])
                applied_now.append(mig)
            apply_privileges(conn, report)
            report.lifecycle_changed = sync_lifecycle(conn)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", [_LOCK_KEY])
    return MigrateReport(applied_now, report)


# -- the lifecycle, as data for the write functions -------------------------------------------
_LIFECYCLE_ROWS = "select from_state, to_state from lifecycle_transitions"


def database_pairs(conn: psycopg.Connection) -> set[tuple[str, str]]:
    """The legal pairs the database's write functions enforce."""
    return {tuple(r) for r in conn.execute(_LIFECYCLE_ROWS).fetchall()}


def lifecycle_pairs() -> set[tuple[str, str]]:
    """The legal pairs of the one definition (state_service/lifecycle.py)."""
    return {(f.value, t.value) for f, t in lifecycle.legal_pairs()}


def sync_lifecycle(conn: psycopg.Connection) -> bool:
    """Make ``lifecycle_transitions`` exactly lifecycle.py's legal pairs; True if it changed."""
    with conn.transaction():
        conn.execute("lock table lifecycle_transitions in exclusive mode")
        if database_pairs(conn) == lifecycle_pairs():
            return False
        conn.execute("delete from lifecycle_transitions")
        with conn.cursor() as cur:
            cur.executemany("insert into lifecycle_transitions (from_state, to_state)"
                            " values (%s, %s)", sorted(lifecycle_pairs()))
    return True


# -- roles (cluster-wide) ---------------------------------------------------------------------
def ensure_roles(conn: psycopg.Connection, attempts: int = 5) -> RolesReport:
    """Create the three roles when missing and correct their attributes and passwords.

    Roles are cluster-wide, and migrations of other databases on the cluster may run at the
    same moment (the advisory lock is per database): a role another session creates first is
    taken as existing (duplicate_object, or unique_violation while both were inserting), and a
    concurrent update of the same role (``tuple concurrently updated``) is retried."""
    for attempt in range(1, attempts + 1):
        report = RolesReport()
        try:
            for role in roles.ROLES:
                report.status[role] = ensure_role(conn, role, login=role in roles.LOGIN_ROLES)
            for role in roles.LOGIN_ROLES:
                secret = roles.password(role)
                if secret:
                    hashed = conn.pgconn.encrypt_password(secret.encode(), role.encode())
                    conn.execute(sql.SQL("alter role {} password {}").format(
                        sql.Identifier(role), sql.Literal(hashed.decode())))
                    report.passwords.append(role)
            _ensure_memberships(conn, report)
            return report
        except errors.InternalError_ as exc:  # XX000: tuple concurrently updated
            if attempt == attempts or "concurrently" not in str(exc):
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def _role_row(conn: psycopg.Connection, role: str) -> dict | None:
    cols = ", ".join(["rolcanlogin", *_DENIED_ATTRIBUTES])
    row = conn.execute(f"select {cols} from pg_roles where rolname = %s", [role]).fetchone()
    return None if row is None else dict(zip(["rolcanlogin", *_DENIED_ATTRIBUTES], row,
                                             strict=True))


def ensure_role(conn: psycopg.Connection, role: str, login: bool) -> str:
    """Make ``role`` exist with LOGIN (or NOLOGIN) and none of the powerful attributes; race-
    safe against a concurrent creator. Returns "created", "exists" or "corrected (...)"."""
    wanted = ["LOGIN" if login else "NOLOGIN", *(f"NO{a.upper()}"
                                                for a in _DENIED_ATTRIBUTES.values())]
    row = _role_row(conn, role)
    if row is None:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("create role {} " + " ".join(wanted)).format(
                    sql.Identifier(role)))
            return "created"
        except (errors.DuplicateObject, errors.UniqueViolation):
            row = _role_row(conn, role)  # another migration created it a moment ago
            if row is None:
                raise
    wrong = [f"{'no' if login else ''}login" if row["rolcanlogin"] != login else None]
    wrong += [name for col, name in _DENIED_ATTRIBUTES.items() if row[col]]
    wrong = [w for w in wrong if w]
    if not wrong:
        return "exists"
    conn.execute(sql.SQL("alter role {} " + " ".join(wanted)).format(sql.Identifier(role)))
    return f"corrected (was {', '.join(wrong)})"


def _ensure_memberships(conn: psycopg.Connection, report: RolesReport) -> None:
    """A non-superuser admin (RDS) joins the owner, to hand objects to it; the login roles are
    members of no role that would make them the owner."""
    superuser, admin = conn.execute(
        "select rolsuper, current_user from pg_roles where rolname = current_user").fetchone()
    member = "select pg_has_role(%s, %s, 'MEMBER')"
    # ALTER ... OWNER TO needs the right to SET ROLE to the new owner. On PostgreSQL 16+ the
    # CREATEROLE admin that created the owner is its member WITH ADMIN but without SET
    # (createrole_self_grant is empty by default, as on RDS): MEMBER is not enough there.
    can_set = ("select pg_has_role(%s, %s, 'SET')" if conn.info.server_version >= 160000
               else member)
    if not superuser and not conn.execute(can_set, [admin, roles.OWNER]).fetchone()[0]:
        conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(roles.OWNER),
                                                      sql.Identifier(admin)))
        report.memberships.append(f"granted {roles.OWNER} to {admin} (the admin)")
    for role in roles.LOGIN_ROLES:
        if conn.execute(member, [role, roles.OWNER]).fetchone()[0]:
            conn.execute(sql.SQL("revoke {} from {}").format(sql.Identifier(roles.OWNER),
                                                             sql.Identifier(role)))
            report.memberships.append(f"revoked {roles.OWNER} from {role}")
            if conn.execute(member, [role, roles.OWNER]).fetchone()[0]:
                raise MigrationError(f"{role} is a member of {roles.OWNER} through another "
                                     "role: revoke that membership; the login roles must not "
                                     "own the schema")


# -- ownership and grants (this database) ---------------------------------------------------
_NOT_EXTENSION = ("not exists (select 1 from pg_depend e where e.classid = {cls}::regclass"
                  " and e.objid = {oid} and e.deptype = 'e')")
_UNOWNED_RELATIONS = f"""
select c.relkind, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %(schema)s and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S', 'c')
  and c.relowner <> %(owner)s::regrole
  and {_NOT_EXTENSION.format(cls="'pg_class'", oid="c.oid")}
  -- a sequence owned by a column (identity, serial) follows its table
  and not (c.relkind = 'S' and exists (select 1 from pg_depend d
           where d.classid = 'pg_class'::regclass and d.objid = c.oid
             and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')))
order by c.relkind <> 'r', 2
"""
_UNOWNED_ROUTINES = f"""
select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = %(schema)s and p.proowner <> %(owner)s::regrole
  and {_NOT_EXTENSION.format(cls="'pg_proc'", oid="p.oid")}
order by 1
"""
_UNOWNED_TYPES = f"""
select t.oid::regtype::text from pg_type t join pg_namespace n on n.oid = t.typnamespace
where n.nspname = %(schema)s and t.typtype in ('e', 'd', 'r') and t.typowner <> %(owner)s::regrole
  and {_NOT_EXTENSION.format(cls="'pg_type'", oid="t.oid")}
order by 1
"""
_RELKIND = {"r": "table", "p": "table", "v": "view", "m": "materialized view",
            "f": "foreign table", "S": "sequence", "c": "type"}
#: Every ACL that the grant step touches, to tell whether it changed anything.
_ACLS = """
select 'database', datacl::text[] from pg_database where datname = current_database()
union all select 'schema', nspacl::text[] from pg_namespace where nspname = %(schema)s
union all select c.relname, c.relacl::text[] from pg_class c
  join pg_namespace n on n.oid = c.relnamespace where n.nspname = %(schema)s
union all select c.relname || '.' || a.attname, a.attacl::text[] from pg_attribute a
  join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = %(schema)s and a.attacl is not null
"""


def _acls(conn: psycopg.Connection) -> dict[str, frozenset[str]]:
    return {name: frozenset(acl or ()) for name, acl in
            conn.execute(_ACLS, {"schema": roles.SCHEMA}).fetchall()}


def apply_privileges(conn: psycopg.Connection, report: RolesReport) -> None:
    """Hand the schema's objects to the owner, then set the service's and the reader's
    privileges to exactly ``state_service.roles``'s, in one transaction."""
    ident = sql.Identifier
    owner, service, reader = (ident(r) for r in (roles.OWNER, roles.SERVICE, roles.READER))
    schema = ident(roles.SCHEMA)
    args = {"schema": roles.SCHEMA, "owner": roles.OWNER}
    with conn.transaction():
        before = _acls(conn)
        # a new owner must have CREATE on the schema (checked unless the admin is a superuser,
        # e.g. on RDS); only the admin acts as the owner: the login roles are not its members
        conn.execute(sql.SQL("grant create on schema {} to {}").format(schema, owner))
        for kind, name in conn.execute(_UNOWNED_RELATIONS, args).fetchall():
            conn.execute(sql.SQL("alter {} {} owner to {}").format(
                sql.SQL(_RELKIND[kind]), sql.SQL(name), owner))
            report.owned.append(f"{_RELKIND[kind]} {name}")
        for (name,) in conn.execute(_UNOWNED_ROUTINES, args).fetchall():
            conn.execute(sql.SQL("alter routine {} owner to {}").format(sql.SQL(name), owner))
            report.owned.append(f"function {name}")
        for (name,) in conn.execute(_UNOWNED_TYPES, args).fetchall():
            conn.execute(sql.SQL("alter type {} owner to {}").format(sql.SQL(name), owner))
            report.owned.append(f"type {name}")

        database = ident(conn.execute("select current_database()").fetchone()[0])
        for stmt in (
            "grant connect on database {database} to {service}, {reader}",
            "grant usage on schema {schema} to {service}, {reader}",
            "revoke all on all tables in schema {schema} from public, {service}, {reader}",
            "revoke all on all sequences in schema {schema} from public, {service}, {reader}",
            "grant select on all tables in schema {schema} to {reader}",
        ):
            conn.execute(sql.SQL(stmt).format(database=database, schema=schema,
                                              service=service, reader=reader))
        for table, privileges in roles.SERVICE_TABLE_PRIVILEGES.items():
            conn.execute(sql.SQL("grant {} on {}.{} to {}").format(
                sql.SQL(", ").join(sql.SQL(p) for p in privileges), schema, ident(table),
                service))
        conn.execute(sql.SQL("grant update ({}) on {}.{} to {}").format(
            sql.SQL(", ").join(ident(c) for c in roles.TRANSITION_COLUMNS), schema,
            ident(roles.TOKENS_TABLE), service))
        sequence = conn.execute("select pg_get_serial_sequence(%s, 'transition_id')",
                                [f"{roles.SCHEMA}.{roles.LOG_TABLE}"]).fetchone()[0]
        conn.execute(sql.SQL("grant usage on sequence {} to {}").format(sql.SQL(sequence),
                                                                        service))
        for fn in roles.SERVICE_FUNCTIONS:
            conn.execute(sql.SQL("revoke all on function {}.{} from public, {}").format(
                schema, sql.SQL(fn), reader))
            conn.execute(sql.SQL("grant execute on function {}.{} to {}").format(
                schema, sql.SQL(fn), service))
        report.grants_changed = _acls(conn) != before
