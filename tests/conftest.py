"""Shared fixtures: a fresh PostgreSQL database per test session, and the state service."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import fakesnow
import httpx
import psycopg
import pytest

from state_service import roles
from state_service.app import create_app
from state_service.migrate import migrate
from state_service.server import ServiceThread
from tests.world import START as WORLD_START
from tokenwatch.postgres import PgServer, drop_database, ensure_database, resolve_server

# the built warehouses (the world through ingestion and dbt, once per session) for every folder
pytest_plugins = ["tests.warehouses"]

API_KEY = "test-key-" + uuid.uuid4().hex
# The Dagster definitions are built at import, their daily partitions from
# TOKENWATCH_PARTITIONS_START: the tests' worlds start on tests/world.py's START, and so do they.
os.environ.setdefault("TOKENWATCH_PARTITIONS_START", WORLD_START.date().isoformat())
_FAKESNOW_SERVER = fakesnow.server  # the function, before its submodule can shadow it


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
def service_dsn(pg_dsn: str) -> str:
    """The session database as the state service connects to it: ``tokenwatch_service``."""
    return roles.role_dsn(pg_dsn, roles.SERVICE)


@pytest.fixture(scope="session")
def service(service_dsn: str) -> Iterator[ServiceThread]:
    """The service under its least-privilege role (the database is migrated by ``pg_dsn``), so
    every API test also proves the role is enough."""
    with ServiceThread(create_app(service_dsn, api_keys=[API_KEY], pool_size=20,
                                  run_migrations=False)) as svc:
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


@pytest.fixture()
def source_dsn(pg_server: PgServer) -> Iterator[str]:
    """A migrated state-service database of this test's own, dropped afterwards."""
    name = f"tokenwatch_src_{uuid.uuid4().hex[:10]}"
    dsn = ensure_database(pg_server, name)
    migrate(dsn)
    yield dsn
    drop_database(pg_server, name)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory, pg_dsn: str) -> Iterator:
    """A real local stack (moto server + Datadog intake processes) under a home of its own.

    PostgreSQL for the stack is this session's database (via TOKENWATCH_PG_DSN), so nothing
    the tests do touches a user's data.
    """
    from sandbox import stack as stack_mod

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


@pytest.fixture(scope="session")
def world(pg_server: PgServer, local_stack) -> Iterator:
    """A simulated world (faults on) in a database, bucket and stream of its own; read-only
    for tests: load it, never write to it."""
    from tests.world import build_world

    built = build_world(pg_server, local_stack, API_KEY)
    yield built
    drop_database(pg_server, built.database)


@pytest.fixture()
def warehouse_factory(pg_server: PgServer, tmp_path, request) -> Iterator:
    """``make(target)`` opens a fresh, empty warehouse: a DuckDB file of this test's own, a
    PostgreSQL database of its own (dropped afterwards), or a database of its own on a local
    fakesnow server (Snowflake's connector over HTTP)."""
    from ingestion.warehouse.duckdb import DuckDBWarehouse
    from ingestion.warehouse.postgres import PostgresWarehouse

    opened, databases = [], []

    def make(target: str):
        if target == "duckdb":
            wh = DuckDBWarehouse(tmp_path / f"warehouse-{len(opened)}.duckdb")
        elif target == "snowflake":
            from ingestion.warehouse.snowflake import SnowflakeWarehouse

            wh = SnowflakeWarehouse.open(f"tw_{uuid.uuid4().hex[:10]}",
                                         **request.getfixturevalue("fakesnow_server"))
        elif target == "postgres":
            name = f"tokenwatch_wh_{uuid.uuid4().hex[:10]}"
            databases.append(name)
            wh = PostgresWarehouse(ensure_database(pg_server, name))
        else:
            raise ValueError(target)
        wh.ensure_schema()
        opened.append(wh)
        return wh

    yield make
    for wh in opened:
        wh.close()
    for name in databases:
        drop_database(pg_server, name)


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[dict]:
    """fakesnow's server mode: connection keyword arguments for snowflake.connector."""
    with _FAKESNOW_SERVER() as kwargs:
        # starting it imports the submodule fakesnow.server, which replaces the package's
        # server() function of the same name: put the function back for later callers
        fakesnow.server = _FAKESNOW_SERVER
        yield kwargs


@pytest.fixture(scope="session")
def apm_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Datadog's APM test agent (its own venv under .tokenwatch/, installed on first use), on
    a free port, its trace checks on; stopped at the end."""
    from sandbox.apm_agent import TestAgent

    with TestAgent(tmp_path_factory.mktemp("apm-agent") / "agent.log") as agent:
        yield agent

