"""Finding a PostgreSQL server, and creating or dropping databases on it.

Resolution order (the same for the service, the CLI, the stack and the tests):

1. ``TOKENWATCH_PG_DSN`` when it is set: used as given, its dbname is the state service's.
2. A server answering on 127.0.0.1:5432 (user ``PGUSER`` or ``postgres``, trust or ``PGPASSWORD``).
3. A private server under ``$TOKENWATCH_HOME/pg`` started with the ``pgserver`` package; it keeps
   running after the command that started it, until ``tokenwatch stack down``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tokenwatch import config

log = logging.getLogger(__name__)

LOCAL_DSN = "host=127.0.0.1 port=5432 dbname=postgres connect_timeout=2"


@dataclass(frozen=True)
class PgServer:
    """A reachable PostgreSQL server and the database tokenwatch uses on it."""

    dsn: str  # connection string to the server (any database we may connect to)
    database: str  # the state service's database
    source: str  # "env", "local" or "private"

    def dsn_for(self, database: str | None = None) -> str:
        """A connection string for ``database`` (default: the state service's) on this server."""
        return make_conninfo(self.dsn, dbname=database or self.database)


def _answers(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as conn:
            conn.execute("select 1")
        return True
    except psycopg.OperationalError:
        return False


def private_server_dir():
    return config.home() / "pg"


def _start_private_server() -> str:
    import pgserver  # bundles PostgreSQL binaries; imported only when needed

    pgdata = private_server_dir()
    log.info("starting a private PostgreSQL under %s", pgdata)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    return server.get_uri()


def resolve_server() -> PgServer:
    """Find (or start) the PostgreSQL server tokenwatch should use. See the module docstring."""
    settings = config.settings()
    env_dsn = config.secret(settings.pg_dsn)
    if env_dsn:
        params = conninfo_to_dict(env_dsn)
        return PgServer(dsn=env_dsn, database=str(params.get("dbname") or "postgres"),
                        source="env")
    local = make_conninfo(LOCAL_DSN, user=settings.pguser)
    if _answers(local):
        return PgServer(dsn=local, database=settings.pg_database, source="local")
    uri = _start_private_server()
    return PgServer(dsn=uri, database=settings.pg_database, source="private")


def stop_private_server() -> bool:
    """Stop the private server if one runs under ``$TOKENWATCH_HOME/pg``. True if one was."""
    pgdata = private_server_dir()
    if not (pgdata / "postmaster.pid").exists():
        return False
    from pgserver._commands import pg_ctl  # the binaries bundled with pgserver

    # as root, pgserver runs PostgreSQL under a 'pgserver' system user
    user = "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    pg_ctl(["-m", "fast", "-w", "stop"], pgdata=pgdata, user=user)
    return True


def ensure_database(server: PgServer, database: str | None = None) -> str:
    """Create ``database`` on ``server`` when missing; return its connection string."""
    name = database or server.database
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
            log.info("created database %s", name)
    return server.dsn_for(name)


def drop_database(server: PgServer, database: str) -> None:
    """Drop ``database`` (closing its other connections first)."""
    with psycopg.connect(server.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(database)))
