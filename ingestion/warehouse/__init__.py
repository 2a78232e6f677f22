"""Opening the warehouse: the one switch between DuckDB, PostgreSQL and Snowflake.

``TOKENWATCH_WAREHOUSE`` picks the target: ``duckdb`` (default with ``TOKENWATCH_ENV=local``),
``postgres``, or ``snowflake`` (default with ``TOKENWATCH_ENV=prod``). Each target reads its own
settings from the environment (``tokenwatch.config.Settings``; the README's configuration table).
"""

from __future__ import annotations

from pathlib import Path

from ingestion.warehouse.base import Warehouse
from tokenwatch import config

TARGETS = config.WAREHOUSES
#: dbt's target for each warehouse (dbt_project/profiles.yml)
DBT_TARGETS = {"duckdb": "local", "postgres": "postgres", "snowflake": "snowflake"}
WAREHOUSE_PG_DATABASE = "tokenwatch_warehouse"


def target_name() -> str:
    """``TOKENWATCH_WAREHOUSE``, default ``duckdb`` locally, ``snowflake`` in prod."""
    settings = config.settings()
    default = "snowflake" if settings.env == "prod" else "duckdb"
    return settings.warehouse or default


def duckdb_path() -> Path:
    """``TOKENWATCH_DUCKDB_PATH``, default ``$TOKENWATCH_HOME/warehouse.duckdb``."""
    configured = config.settings().duckdb_path
    return configured if configured else config.home() / "warehouse.duckdb"


def read_replica_path() -> Path:
    """``TOKENWATCH_DUCKDB_REPLICA_PATH``, default beside the warehouse file with ``-read``
    added to its name (``$TOKENWATCH_HOME/warehouse-read.duckdb``): the DuckDB file readers
    open, never the one the loaders write (``ingestion.warehouse.duckdb``). Only the DuckDB
    target has one: PostgreSQL and Snowflake serve readers and writers at once."""
    return config.settings().duckdb_replica_path or replica_beside(duckdb_path())


def replica_beside(path: Path) -> Path:
    """The read replica's default name for the DuckDB file ``path``: ``-read`` added."""
    return path.with_name(f"{path.stem}-read{path.suffix}")


def publish_read_replica() -> bool:
    """Publish the DuckDB warehouse's read replica now (a writer's close does it already);
    ``False`` when it is current, when another writer has the file, or for other targets."""
    if target_name() != "duckdb":
        return False
    from ingestion.warehouse.duckdb import publish_replica

    return publish_replica(duckdb_path(), read_replica_path())


def postgres_dsn() -> str:
    """``TOKENWATCH_WAREHOUSE_DSN``, else database ``tokenwatch_warehouse`` on the resolved
    server (created when missing)."""
    configured = config.secret(config.settings().warehouse_dsn)
    if configured:
        return configured
    from tokenwatch.postgres import ensure_database, resolve_server

    return ensure_database(resolve_server(), WAREHOUSE_PG_DATABASE)


def open_warehouse(target: str | None = None, *, create: bool = True) -> Warehouse:
    """Connect to the configured warehouse; with ``create``, make its raw schema if missing."""
    target = target or target_name()
    if target == "duckdb":
        from ingestion.warehouse.duckdb import DuckDBWarehouse

        # its close publishes the read replica: readers never open the file loaders write
        wh: Warehouse = DuckDBWarehouse(duckdb_path(), replica=read_replica_path())
    elif target == "postgres":
        from ingestion.warehouse.postgres import PostgresWarehouse

        wh = PostgresWarehouse(postgres_dsn())
    elif target == "snowflake":
        from ingestion.warehouse.snowflake import SnowflakeWarehouse

        wh = SnowflakeWarehouse.from_env()
    else:
        raise ValueError(f"unknown warehouse target {target!r}; expected one of {TARGETS}")
    if create:
        wh.ensure_schema()
    return wh


def dbt_env(target: str | None = None) -> dict[str, str]:
    """Environment for dbt's profile (dbt_project/profiles.yml) so that dbt reads exactly the
    warehouse ingestion writes: the same DuckDB file, PostgreSQL database or Snowflake account
    (whose ``TOKENWATCH_SNOWFLAKE_*`` settings both already share)."""
    target = target or target_name()
    env = {"TOKENWATCH_DBT_TARGET": DBT_TARGETS[target]}
    if target == "duckdb":
        env["TOKENWATCH_DUCKDB_PATH"] = str(duckdb_path().resolve())
    elif target == "postgres":
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(postgres_dsn())
        for key, name in (("host", "HOST"), ("port", "PORT"), ("user", "USER"),
                          ("password", "PASSWORD"), ("dbname", "DBNAME")):
            if params.get(key):
                env[f"TOKENWATCH_WH_PG_{name}"] = str(params[key])
    return env
