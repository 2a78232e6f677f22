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

        wh: Warehouse = DuckDBWarehouse(duckdb_path())
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
