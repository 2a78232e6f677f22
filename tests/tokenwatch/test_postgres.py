"""PostgreSQL resolution: env DSN, then 127.0.0.1:5432, then a private pgserver."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from state_service.migrate import available, migrate
from tokenwatch import postgres as database
from tokenwatch.ports import free_port


def test_env_dsn_wins(monkeypatch, pg_dsn):
    monkeypatch.setenv("TOKENWATCH_PG_DSN", pg_dsn)
    server = database.resolve_server()
    assert server.source == "env"
    with psycopg.connect(server.dsn_for()) as conn:
        assert conn.execute("select count(*) from schema_migrations").fetchone()[0] >= 1


@pytest.fixture()
def home_outside_pytest():
    """A home outside pytest's base temp: as root, pgserver runs PostgreSQL as its own user and
    opens the path for it, but any other pytest session on the machine resets
    /tmp/pytest-of-root to 0700 again, and the server can no longer reach its data."""
    path = Path(tempfile.mkdtemp(prefix="tokenwatch-pg-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_private_server_when_nothing_answers(monkeypatch, home_outside_pytest):
    tmp_path = home_outside_pytest
    monkeypatch.delenv("TOKENWATCH_PG_DSN", raising=False)
    monkeypatch.setenv("TOKENWATCH_HOME", str(tmp_path))
    # nothing listens on this port, so resolution falls through to the private server
    monkeypatch.setattr(database, "LOCAL_DSN",
                        f"host=127.0.0.1 port={free_port()} dbname=postgres connect_timeout=1")
    server = database.resolve_server()
    try:
        assert server.source == "private"
        assert (tmp_path / "pg" / "postmaster.pid").exists()
        dsn = database.ensure_database(server)
        assert [m.version for m in migrate(dsn)] == [m.version for m in available()]
        with psycopg.connect(dsn) as conn:
            assert conn.execute("show server_version").fetchone()[0]
        # resolving again reuses the running server
        assert database.resolve_server().dsn == server.dsn
    finally:
        assert database.stop_private_server()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.dsn_for(), connect_timeout=2)
