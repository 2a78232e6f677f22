"""Running the reports API from the environment (``tokenwatch reports serve``).

The warehouse is the configured target's (``TOKENWATCH_WAREHOUSE``): on DuckDB its read replica,
on PostgreSQL ``TOKENWATCH_WAREHOUSE_DSN``, on Snowflake the ``TOKENWATCH_SNOWFLAKE_*``
connection. Timelines read the state service's database as ``tokenwatch_reader``
(``TOKENWATCH_READER_PG_DSN``, else the admin's DSN with that role). Keys:
``TOKENWATCH_REPORT_KEYS``; bounds: ``TOKENWATCH_REPORTS_MAX_ROWS``,
``TOKENWATCH_REPORTS_QUERY_TIMEOUT_S``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from reporting import semantic
from reporting.api.access_log import AccessLog, opener_from_env
from reporting.api.app import create_app
from reporting.api.auth import keys_from_env
from reporting.api.readers import DuckDBReader, PostgresReader, Reader, SnowflakeReader
from reporting.api.timeline import StateSource
from tokenwatch import config

log = logging.getLogger("tokenwatch.reports")


def reader_from_env(target: str, timeout_s: float) -> Reader:
    if target == "duckdb":
        from ingestion.warehouse import read_replica_path

        return DuckDBReader(read_replica_path(), timeout_s)
    if target == "postgres":
        from ingestion.warehouse import postgres_dsn

        return PostgresReader(postgres_dsn(), timeout_s)
    from ingestion.warehouse.snowflake import connect_kwargs_from_env

    return SnowflakeReader(connect_kwargs_from_env(), timeout_s)


def state_from_env(timeout_s: float) -> StateSource | None:
    from state_service.server import reader_dsn_from_env

    try:
        return StateSource(reader_dsn_from_env(), timeout_s)
    except Exception as error:  # noqa: BLE001 - the metrics still answer; timelines say 503
        log.warning("timelines are unavailable: the state service's database cannot be "
                    "reached (%s)", error.__class__.__name__)
        return None


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``."""
    from ingestion.warehouse import target_name

    settings = config.settings()
    target = target_name()
    timeout = settings.reports_query_timeout_s
    opener, idle_close = opener_from_env(target)
    return create_app(reader=reader_from_env(target, timeout),
                      layer=semantic.for_engine(target), keys=keys_from_env(),
                      state=state_from_env(timeout),
                      access_log=AccessLog(opener, close_after_idle_s=idle_close),
                      max_rows=settings.reports_max_rows)
