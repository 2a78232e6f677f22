"""Copying a DuckDB raw layer into a Snowflake-speaking server (fakesnow in the tests), with
Snowflake's types for raw_schema's logical types, through plain SQL inserts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from ingestion.raw_schema import SCHEMA, TABLES

SNOWFLAKE_TYPES = {"text": "varchar", "bigint": "number(38,0)", "integer": "integer",
                   "double": "float", "boolean": "boolean", "timestamp": "timestamp_tz",
                   "json": "variant"}
BATCH = 200


def _literal(value, logical: str) -> str:
    if value is None:
        return "null"
    if logical in ("bigint", "integer", "double"):
        return repr(value)
    if logical == "boolean":
        return "true" if value else "false"
    if isinstance(value, datetime):
        value = value.isoformat()
    elif not isinstance(value, str):
        value = json.dumps(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def copy_raw_layer(duckdb_path: Path, snowflake_conn, database: str) -> dict[str, int]:
    """Create ``<database>.raw.*`` and copy every raw table; returns rows per table."""
    import duckdb

    cur = snowflake_conn.cursor()
    cur.execute(f"create database if not exists {database}")
    cur.execute(f"create schema if not exists {database}.{SCHEMA}")
    copied = {}
    with duckdb.connect(str(duckdb_path), read_only=True) as src:
        src.execute("set timezone = 'UTC'")
        for table in TABLES.values():
            cols = ", ".join(f"{c.name} {SNOWFLAKE_TYPES[c.type]}" for c in table.columns)
            name = f"{database}.{SCHEMA}.{table.name}"
            cur.execute(f"create or replace table {name} ({cols})")
            names = ", ".join(c.name for c in table.columns)
            select = ", ".join(
                f"parse_json(column{i})" if c.type == "json"
                else f"column{i}::{SNOWFLAKE_TYPES[c.type]}"
                for i, c in enumerate(table.columns, start=1))
            fetched = src.execute(f"select {names} from {SCHEMA}.{table.name}").fetchall()
            for start in range(0, len(fetched), BATCH):
                values = ", ".join(
                    "(" + ", ".join(_literal(v, c.type) for v, c in zip(row, table.columns,
                                                                          strict=True)) + ")"
                    for row in fetched[start:start + BATCH])
                cur.execute(f"insert into {name} ({names}) select {select} from values {values}")
            copied[table.name] = len(fetched)
    return copied
