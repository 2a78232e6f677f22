"""Built warehouses for every test that reads the marts (a plugin of tests/conftest.py, so the
dbt, reporting and orchestration tests share one build per session): the simulated world
loaded into a DuckDB file and a PostgreSQL database of their own, and dbt built on each (once
per session).

The world (tests/conftest.py) is read-only; the raw warehouses here are ours, and get two
planted audit findings (``_tamper``). Each build runs
dbt in-process with its target/ and logs/ under a temporary directory.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.dbt.dbt_runner import DbtResult, duckdb_env, postgres_env, run_dbt
from tokenwatch.postgres import PgServer, drop_database, ensure_database


def rows(built: Built, query: str) -> list[tuple]:
    """Run a query on a built warehouse; numbers come back as int or float on both targets."""
    if built.path is not None:
        import duckdb

        with duckdb.connect(str(built.path), read_only=True) as con:
            fetched = con.execute(query).fetchall()
    else:
        with psycopg.connect(built.dsn) as conn:
            fetched = conn.execute(query).fetchall()
    return [tuple(_plain(v) for v in row) for row in fetched]


def _plain(value):
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


@dataclass
class Built:
    """A warehouse with the raw layer loaded and dbt built on it."""

    target: str  # dbt target: local | postgres
    env: dict[str, str]  # the target's environment for further dbt runs
    build: DbtResult
    workdir: Path
    path: Path | None = None  # DuckDB file
    dsn: str | None = None  # PostgreSQL database
    roles: tuple[str, str] | None = None  # (analyst, compliance) roles granted on postgres


def register_loads(con, tables) -> None:
    """What ingestion does as a load's last step (ingestion/warehouse/base.py), for rows a test
    wrote into ``raw.<table>`` itself on a DuckDB connection: each table's new ``_loaded_at``
    stamps get the next number from ``raw._load_counter``, in order."""
    for table in tables:
        con.execute("update raw._load_counter set last_seq = last_seq + 1")
        con.execute(f"""
            insert into raw._loads
            select (select last_seq from raw._load_counter), '{table}', _loaded_at, count(*),
                   now()
            from raw.{table}
            where _loaded_at not in (select loaded_at from raw._loads
                                     where table_name = '{table}')
            group by _loaded_at""")


def ingest_world(world, wh, timeout: float = 180) -> None:
    """Load the world; transitions again until all of them are in. The transitions loader
    reads below the cluster's oldest running transaction (pg_snapshot_xmin), so while another
    session on the shared server holds a transaction open, the world's rows wait for a later
    run: by design, they are never skipped."""
    from ingestion.run import ingest

    sources = world.sources()
    ingest(sources, wh)
    expected = world.summary["service"]["recorded"]
    deadline = time.monotonic() + timeout
    while wh.count("token_state_transitions") < expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {wh.count('token_state_transitions')} of {expected} "
                                 f"transitions ingested after {timeout:.0f} s: a session on "
                                 "the PostgreSQL server keeps a transaction open")
        time.sleep(1)
        ingest(sources, wh, only=("transitions",))


#: A test card number (Visa, passes Luhn) and a 16-digit run that fails Luhn.
PAN = "4111111111111111"
NOT_A_PAN = "4111111111111112"


def _tamper(wh) -> None:
    """Two audit findings planted in our copy of the raw layer, the same on every target, that
    change no count the summary tests check: a transition edited after it was written (its
    row_hash no longer matches: hash_chain_break) and a card number in a wallet event's extra
    fields (pan_like_value)."""
    wh.execute("""
        update raw.token_state_transitions set reason_code = 'device_lost'
        where transition_id = (select min(transition_id) from raw.token_state_transitions
                               where to_state = 'WalletActive')""")
    extra = f'{{"note": "card {PAN} on file", "order": "{NOT_A_PAN}"}}'
    wh.execute(f"""
        update raw.wallet_events set extra = cast(%s as {wh.type_map['json']})
        where event_id = (select min(event_id) from raw.wallet_events
                          where event_type = 'token_used')""", [extra])


def _build(target: str, env: dict[str, str], workdir: Path) -> DbtResult:
    res = run_dbt(["build"], target, env, workdir)
    assert res.success, res.explain()
    return res


@pytest.fixture(scope="session")
def raw_duckdb(world, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The world ingested into a DuckDB file of this session's own (connection closed)."""
    from ingestion.warehouse.duckdb import DuckDBWarehouse

    path = tmp_path_factory.mktemp("dbt-duckdb") / "warehouse.duckdb"
    wh = DuckDBWarehouse(path)
    try:
        wh.ensure_schema()
        ingest_world(world, wh)
        _tamper(wh)
    finally:
        wh.close()  # dbt opens the file next; DuckDB allows one writer process
    return path


@pytest.fixture(scope="session")
def built_duckdb(raw_duckdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """``dbt build --target local`` on the world's DuckDB warehouse."""
    workdir = tmp_path_factory.mktemp("dbt-local")
    env = duckdb_env(raw_duckdb)
    return Built("local", env, _build("local", env, workdir), workdir, path=raw_duckdb)


@pytest.fixture(scope="session")
def raw_postgres(world, pg_server: PgServer) -> Iterator[str]:
    """The world ingested into a PostgreSQL database of this session's own."""
    from ingestion.warehouse.postgres import PostgresWarehouse

    name = f"tokenwatch_dbt_{uuid.uuid4().hex[:10]}"
    dsn = ensure_database(pg_server, name)
    try:
        wh = PostgresWarehouse(dsn)
        try:
            wh.ensure_schema()
            ingest_world(world, wh)
            _tamper(wh)
        finally:
            wh.close()
        yield dsn
    finally:
        drop_database(pg_server, name)


@pytest.fixture(scope="session")
def analyst_roles(pg_server: PgServer) -> Iterator[tuple[str, str]]:
    """An analyst and a compliance role of this session's own (roles are cluster-wide)."""
    suffix = uuid.uuid4().hex[:8]
    roles = (f"tokenwatch_analyst_{suffix}", f"tokenwatch_compliance_{suffix}")
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        for role in roles:
            conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(role)))
    yield roles
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        for role in roles:
            # privileges live in the warehouse database, dropped before this teardown runs
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))


@pytest.fixture(scope="session")
def built_postgres(raw_postgres: str, analyst_roles: tuple[str, str],
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """``dbt build --target postgres`` on the world's PostgreSQL warehouse, with grants to
    this session's analyst and compliance roles."""
    workdir = tmp_path_factory.mktemp("dbt-postgres")
    env = postgres_env(raw_postgres) | {"TOKENWATCH_ANALYST_ROLES": analyst_roles[0],
                                        "TOKENWATCH_COMPLIANCE_ROLES": analyst_roles[1]}
    try:
        yield Built("postgres", env, _build("postgres", env, workdir), workdir,
                    dsn=raw_postgres, roles=analyst_roles)
    finally:
        # the roles' privileges must go before the roles can be dropped
        with psycopg.connect(raw_postgres, autocommit=True) as conn:
            for role in analyst_roles:
                conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
