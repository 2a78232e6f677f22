"""Shared fixtures: a fresh PostgreSQL database per test session, and the state service."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from state_service.app import create_app
from state_service.database import PgServer, drop_database, ensure_database, resolve_server
from state_service.migrate import migrate
from state_service.server import ServiceThread

API_KEY = "test-key-" + uuid.uuid4().hex


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    """The PostgreSQL server the project resolves to (env DSN, 127.0.0.1:5432, or private)."""
    return resolve_server()


@pytest.fixture(scope="session")
def pg_dsn(pg_server: PgServer) -> Iterator[str]:
    """A database of this session's own, migrated, dropped at the end."""
    name = f"tokenwatch_test_{uuid.uuid4().hex[:10]}"
    dsn = ensure_database(pg_server, name)
    migrate(dsn)
    yield dsn
    drop_database(pg_server, name)


@pytest.fixture(scope="session")
def service(pg_dsn: str) -> Iterator[ServiceThread]:
    with ServiceThread(create_app(pg_dsn, api_keys=[API_KEY], pool_size=20)) as svc:
        yield svc


@pytest.fixture()
def client(service: ServiceThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as c:
        yield c


@pytest.fixture()
def db(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory, pg_dsn: str) -> Iterator:
    """A real local stack (moto server + Datadog intake processes) under a home of its own.

    PostgreSQL for the stack is this session's database (via TOKENWATCH_PG_DSN), so nothing
    the tests do touches a user's data.
    """
    from orchestration.local import stack as stack_mod

    saved = {k: os.environ.get(k) for k in ("TOKENWATCH_HOME", "TOKENWATCH_PG_DSN")}
    os.environ["TOKENWATCH_HOME"] = str(tmp_path_factory.mktemp("stack-home"))
    os.environ["TOKENWATCH_PG_DSN"] = pg_dsn
    try:
        yield stack_mod.up()
    finally:
        stack_mod.down()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
