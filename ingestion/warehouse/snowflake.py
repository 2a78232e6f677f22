"""The production warehouse: Snowflake, loaded the way Snowflake loads best.

Each batch is written as a Parquet file, PUT to a temporary internal stage of the session under
a prefix of its own, and loaded into a staging table with ``COPY INTO ...
MATCH_BY_COLUMN_NAME`` (``PURGE = TRUE``). The COPY's own result (Snowflake's load history for
that file: status and rows loaded) is checked against the batch; a mismatch aborts the
transaction. The staging tables (transient, named for the connection, dropped on close) are
created before the first load, because Snowflake commits implicitly around DDL: inside a load
transaction only DML, PUT and COPY run, so rows, quarantine and watermark commit together.

Settings (environment, the same names dbt's profile reads), ``TOKENWATCH_SNOWFLAKE_`` +
``ACCOUNT``, ``USER``, and ``PASSWORD`` or ``PRIVATE_KEY_PATH`` (with
``PRIVATE_KEY_PASSPHRASE``), plus ``ROLE``, ``WAREHOUSE``, ``DATABASE`` (default TOKENWATCH).
``HOST``/``PORT``/``PROTOCOL`` point the connector elsewhere (a local fakesnow server in tests).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.raw_schema import LOAD_COUNTER, SCHEMA, TABLES, Table
from ingestion.warehouse.base import Warehouse
from tokenwatch import config

ENV_PREFIX = "TOKENWATCH_SNOWFLAKE_"


class SnowflakeLoadError(RuntimeError):
    """COPY INTO did not load what was staged; the message carries Snowflake's answer."""


#: A temporary named internal stage of the session that batches are PUT to.
LOAD_STAGE = "_tokenwatch_load"


def connect_kwargs_from_env() -> dict:
    """The connector's keyword arguments from the TOKENWATCH_SNOWFLAKE_* settings
    (ingestion and the reports API connect alike); ValueError naming what is missing."""
    s = config.settings()  # TOKENWATCH_SNOWFLAKE_* (config.SNOWFLAKE_SETTINGS)
    password = config.secret(s.snowflake_password)
    missing = [ENV_PREFIX + v for v in ("ACCOUNT", "USER")
               if not getattr(s, f"snowflake_{v.lower()}")]
    if not password and not s.snowflake_private_key_path:
        missing.append(f"{ENV_PREFIX}PASSWORD or {ENV_PREFIX}PRIVATE_KEY_PATH")
    if missing:
        raise ValueError(f"the snowflake warehouse needs {', '.join(missing)} to be set")
    kwargs: dict = {"account": s.snowflake_account, "user": s.snowflake_user,
                    "database": s.snowflake_database,
                    "application": "tokenwatch"}  # -> open()
    for key in ("role", "warehouse", "host", "protocol"):
        value = getattr(s, f"snowflake_{key}")
        if value:
            kwargs[key] = value
    if s.snowflake_port is not None:
        kwargs["port"] = s.snowflake_port
    if s.snowflake_private_key_path:
        kwargs["private_key_file"] = s.snowflake_private_key_path
        passphrase = config.secret(s.snowflake_private_key_passphrase)
        if passphrase:
            kwargs["private_key_file_pwd"] = passphrase
    else:
        kwargs["password"] = password
    return kwargs


class SnowflakeWarehouse(Warehouse):
    name = "snowflake"
    type_map = {"text": "VARCHAR", "bigint": "NUMBER(38,0)", "integer": "NUMBER(38,0)",
                "double": "FLOAT", "boolean": "BOOLEAN", "timestamp": "TIMESTAMP_TZ",
                "json": "VARIANT"}

    def __init__(self, **connect_kwargs):
        import snowflake.connector

        self.conn = snowflake.connector.connect(**connect_kwargs)
        self.conn.autocommit(True)
        self._tmp = Path(tempfile.mkdtemp(prefix="tokenwatch-snowflake-"))
        self._staging_ready = False
        self._session = uuid.uuid4().hex[:12]

    @classmethod
    def from_env(cls) -> SnowflakeWarehouse:
        return cls.open(**connect_kwargs_from_env())

    @classmethod
    def open(cls, database: str, **connect_kwargs) -> SnowflakeWarehouse:
        """Connect and use ``database``, creating it when missing."""
        import snowflake.connector

        wh = cls(**connect_kwargs)
        try:  # provisioned (deploy/snowflake/bootstrap.sql): the roles may not create one
            wh.execute(f"use database {database}")
        except snowflake.connector.ProgrammingError:
            wh.execute(f"create database if not exists {database}")
            wh.execute(f"use database {database}")
        return wh

    # -- statements -----------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence | None = None) -> int:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.rowcount if cur.rowcount is not None else -1

    def query(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return [tuple(r) for r in cur.fetchall()]

    def _begin(self) -> None:
        self._ensure_staging()
        self.execute("begin")

    def _commit(self) -> None:
        self.execute("commit")

    def _rollback(self) -> None:
        if not self.conn.is_closed():
            self.execute("rollback")

    # -- loading --------------------------------------------------------------------------
    def ensure_named_schema(self, schema: str) -> None:
        """Snowflake checks the CREATE SCHEMA privilege before ``if not exists``: the loading
        and reporting roles, which use schemas the bootstrap made and may not create one,
        ask first."""
        (found,), = self.query("select count(*) from information_schema.schemata "
                               "where lower(schema_name) = lower(%s)", [schema])
        if not found:
            self.execute(f"create schema if not exists {schema}")

    def ensure_schema(self) -> None:
        self.ensure_named_schema(SCHEMA)
        for statement in self.ddl():  # DDL commits implicitly in Snowflake: no transaction
            self.execute(statement)
        self.execute(f"insert into {SCHEMA}.{LOAD_COUNTER.name} (last_seq) select 0 "
                     f"where not exists (select 1 from {SCHEMA}.{LOAD_COUNTER.name})")
        self._ensure_staging()

    def _stage_table(self, table: Table) -> str:
        """This connection's staging table for ``table`` (transient, dropped on close)."""
        return f"{SCHEMA}._load_{self._session}_{table.name.lstrip('_')}"

    def _ensure_staging(self) -> None:
        """One staging table per raw table, made before any load transaction."""
        if self._staging_ready:
            return
        self.execute(f"use schema {SCHEMA}")
        self.execute(f"create temporary stage if not exists {LOAD_STAGE}")
        for table in TABLES.values():
            cols = ", ".join(f"{c.name} {self._stage_type(c.type)}" for c in table.columns)
            self.execute(f"create transient table if not exists {self._stage_table(table)} "
                         f"({cols})")
        self._staging_ready = True

    def _stage_type(self, logical: str) -> str:
        # JSON arrives as text and is parsed on insert: COPY would store a string variant
        return "VARCHAR" if logical == "json" else self.type_map[logical]

    def _cast(self, column: str, logical: str) -> str:
        return f"parse_json({column})" if logical == "json" else column

    def _stage(self, table: Table, data: pa.Table) -> str:
        staged = self._stage_table(table)
        batch = uuid.uuid4().hex  # a prefix of its own: COPY reads exactly this file
        path = self._tmp / f"{table.name.lstrip('_')}.parquet"
        pq.write_table(data, path)
        try:
            self.execute(f"delete from {staged}")
            self.execute(f"put 'file://{path.as_posix()}' @{LOAD_STAGE}/{batch}/ "
                         "auto_compress = false overwrite = true")
            answer = self.query(
                f"copy into {staged} from @{LOAD_STAGE}/{batch}/ "
                "file_format = (type = parquet) "
                "match_by_column_name = case_insensitive purge = true")
        finally:
            path.unlink(missing_ok=True)
        loaded = sum(int(r[3]) for r in answer if len(r) > 3 and str(r[3]).isdigit())
        if not answer or loaded != data.num_rows or any(
                str(r[1]).upper() not in ("LOADED", "LOAD_SUCCESS") for r in answer):
            raise SnowflakeLoadError(f"COPY INTO {staged} loaded {loaded} of {data.num_rows} "
                                     f"rows from @{LOAD_STAGE}/{batch}/: {answer}")
        return staged

    def close(self) -> None:
        if not self.conn.is_closed():
            if self._staging_ready:
                for table in TABLES.values():
                    self.execute(f"drop table if exists {self._stage_table(table)}")
            self.conn.close()
        for leftover in self._tmp.glob("*"):
            leftover.unlink()
        self._tmp.rmdir()
