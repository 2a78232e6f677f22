"""The Tableau extracts: one ``.hyper`` file per Tableau exposure, with only published days.

Which files and tables: ``exposures.py`` (declared on the dbt exposures). Each table keeps the
mart's columns, typed from the warehouse's own column types (``hyper_type``), and its rows:

* a daily mart (``day_column`` declared): only the rows whose day the quality gate passed
  (``quality.verdicts.published_days``); a withheld or never-evaluated day is left out;
* a dimension (``dim_*``, no day column): whole.

Rows move as Arrow: DuckDB hands its result over as Arrow, other warehouses' rows are built
into the same Arrow schema; each table goes through a Parquet file and Hyper's
``COPY ... WITH (FORMAT PARQUET)`` (about 25 times faster than the Hyper API's ``Inserter``
on a million rows). A file is written beside its final name and renamed when complete.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from tableauhyperapi import (
    Connection,
    CreateMode,
    HyperProcess,
    SqlType,
    TableDefinition,
    TableName,
    Telemetry,
    escape_string_literal,
)

from quality import verdicts
from quality.partitions import day_list
from quality.verdicts import as_date
from reporting.tableau.exposures import Extract, ExtractTable, extracts
from tokenwatch import config

Relation = Callable[[str], str]  # model name -> the relation to query in this warehouse
#: The schema of every table in an extract, as Tableau names it in its own extracts.
SCHEMA = "Extract"

_INTEGERS = {"bigint", "integer", "int", "smallint", "tinyint", "hugeint", "int8", "int4",
             "int2", "ubigint", "uinteger", "usmallint", "utinyint", "long", "byteint"}
_FLOATS = {"double", "double precision", "float", "float4", "float8", "real"}
_DECIMALS = {"decimal", "numeric", "number"}
_TEXTS = {"varchar", "character varying", "text", "string", "char", "character", "bpchar"}
_TIMESTAMPS = {"timestamp", "timestamp without time zone", "timestamp_ntz", "datetime"}
_TIMESTAMPS_TZ = {"timestamp with time zone", "timestamptz", "timestamp_tz", "timestamp_ltz"}


class UnsupportedColumnType(TypeError):
    """A mart column whose warehouse type has no Hyper type here; the message names it."""


def default_dir() -> Path:
    """Where the extracts are written and published from: ``$TOKENWATCH_HOME/tableau``."""
    return config.home() / "tableau"


def hyper_type(data_type: str, precision: int | None = None,
               scale: int | None = None) -> tuple[SqlType, pa.DataType]:
    """The Hyper and Arrow types of a warehouse column (information_schema's ``data_type``,
    ``numeric_precision``, ``numeric_scale``): BIGINT, DOUBLE, NUMERIC, DATE, TIMESTAMP,
    TIMESTAMP_TZ, TEXT or BOOL."""
    base = data_type.split("(")[0].strip().lower()
    if base in _INTEGERS or (base in _DECIMALS and scale == 0):
        return SqlType.big_int(), pa.int64()
    if base in _DECIMALS and precision and scale and precision <= 18:
        return SqlType.numeric(precision, scale), pa.decimal128(precision, scale)
    if base in _FLOATS or base in _DECIMALS:  # an unconstrained numeric: a double for Tableau
        return SqlType.double(), pa.float64()
    if base in _TEXTS:
        return SqlType.text(), pa.string()
    if base == "date":
        return SqlType.date(), pa.date32()
    if base in _TIMESTAMPS:
        return SqlType.timestamp(), pa.timestamp("us")
    if base in _TIMESTAMPS_TZ:
        return SqlType.timestamp_tz(), pa.timestamp("us", tz="UTC")
    if base in ("boolean", "bool"):
        return SqlType.bool(), pa.bool_()
    raise UnsupportedColumnType(f"no Hyper type for warehouse type {data_type!r}")


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: SqlType
    arrow_type: pa.DataType


@dataclass(frozen=True)
class TableWritten:
    model: str
    relation: str
    rows: int
    filter: str  # how the rows were chosen: "<day_column> in published days" or "whole"


@dataclass(frozen=True)
class ExtractWritten:
    extract: Extract
    path: Path
    tables: tuple[TableWritten, ...]
    days_held: tuple[date, ...]  # days of the daily tables in the file
    days_left_out: tuple[date, ...]  # days in the marts the gate did not pass

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def columns(wh, relation: str) -> list[Column]:
    """The relation's columns, in order, typed from the warehouse's information_schema."""
    schema, _, table = relation.rpartition(".")
    found = wh.query(
        "select column_name, data_type, numeric_precision, numeric_scale "
        "from information_schema.columns where lower(table_schema) = lower(%s) "
        "and lower(table_name) = lower(%s) order by ordinal_position", [schema, table])
    if not found:
        raise LookupError(f"{relation} is not in the warehouse (has dbt built it?)")
    out = []
    for name, data_type, precision, scale in found:
        try:
            sql_type, arrow_type = hyper_type(str(data_type), precision, scale)
        except UnsupportedColumnType as exc:
            raise UnsupportedColumnType(f"{relation}.{name}: {exc}") from None
        out.append(Column(str(name).lower(), sql_type, arrow_type))
    return out


def _plain(value, arrow_type: pa.DataType):
    """A driver's value as Arrow takes it for ``arrow_type`` (PostgreSQL numerics are Decimal)."""
    if isinstance(value, Decimal):
        if pa.types.is_integer(arrow_type):
            return int(value)
        if pa.types.is_floating(arrow_type):
            return float(value)
    return value


def _read(wh, sql: str, schema: pa.Schema) -> pa.Table:
    con = getattr(wh, "con", None)
    if isinstance(con, duckdb.DuckDBPyConnection):  # Arrow straight from DuckDB
        return con.sql(sql).to_arrow_table().rename_columns(schema.names).cast(schema)
    rows = wh.query(sql)
    values = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    return pa.Table.from_arrays(
        [pa.array([_plain(v, f.type) for v in col], f.type) for col, f in zip(values, schema,
                                                                             strict=True)],
        schema=schema)


def _write_table(con: Connection, wh, table: ExtractTable, relation: str, published: list[date],
                 scratch: Path) -> int:
    cols = columns(wh, relation)
    definition = TableDefinition(TableName(SCHEMA, table.model),
                                 [TableDefinition.Column(c.name, c.sql_type) for c in cols])
    con.catalog.create_table(definition)
    if table.day_column and table.day_column not in {c.name for c in cols}:
        raise LookupError(f"{relation} has no column {table.day_column!r} (the exposure's "
                          "day_column)")
    if table.day_column and not published:
        return 0  # no day passed the gate: the table is there, empty
    sql = f"select {', '.join(c.name for c in cols)} from {relation}"
    if table.day_column:  # a daily mart: only the days the gate passed
        sql += f" where {table.day_column} in ({day_list(published)})"
    data = _read(wh, sql, pa.schema([(c.name, c.arrow_type) for c in cols]))
    if data.num_rows == 0:
        return 0
    parquet = scratch / f"{table.model}.parquet"
    pq.write_table(data, parquet)
    return con.execute_command(f"COPY {definition.table_name} FROM "
                               f"{escape_string_literal(str(parquet))} WITH (FORMAT PARQUET)")


def write_extracts(wh, relation: Relation, out_dir: Path,
                   selected: Sequence[Extract] | None = None) -> list[ExtractWritten]:
    """Write every extract (or ``selected``) into ``out_dir`` from the warehouse ``wh`` (any
    object with ``query(sql, params)``), the marts addressed by ``relation``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    published = sorted(verdicts.published_days(wh))
    written = []
    with (tempfile.TemporaryDirectory(prefix="tokenwatch-tableau-") as scratch,
          HyperProcess(Telemetry.DO_NOT_SEND_USAGE_DATA_TO_TABLEAU,
                       parameters={"log_config": ""}) as hyper):
        for extract in selected if selected is not None else extracts():
            written.append(_write_extract(hyper, wh, relation, extract, out_dir, published,
                                          Path(scratch)))
    return written


def _write_extract(hyper: HyperProcess, wh, relation: Relation, extract: Extract, out_dir: Path,
                   published: list[date], scratch: Path) -> ExtractWritten:
    final = out_dir / extract.file
    partial = out_dir / f".{extract.name}.partial.hyper"
    tables, in_marts = [], set()
    try:
        with Connection(hyper.endpoint, str(partial), CreateMode.CREATE_AND_REPLACE) as con:
            con.catalog.create_schema(SCHEMA)
            for table in extract.tables:
                rel = relation(table.model)
                rows = _write_table(con, wh, table, rel, published, scratch)
                tables.append(TableWritten(table.model, rel, rows, table.filter))
                if table.day_column:
                    in_marts |= {as_date(d) for (d,) in wh.query(
                        f"select distinct {table.day_column} from {rel}")}
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    held = sorted(in_marts & set(published))
    return ExtractWritten(extract, final, tuple(tables), tuple(held),
                          tuple(sorted(in_marts - set(published))))


class _DuckDBReader:
    """A read-only DuckDB connection with the warehouse's ``query`` (``%s`` placeholders)."""

    name = "duckdb"  # as the warehouses name themselves (quality/pan_scan.py keys on it)

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def query(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        return self.con.execute(sql.replace("%s", "?"), params or []).fetchall()


@contextmanager
def open_marts() -> Iterator:
    """The configured warehouse for reading the marts: on DuckDB its read replica, read-only
    (published first if stale), so the loaders keep their file; else the warehouse itself."""
    from ingestion.warehouse import (
        open_warehouse,
        publish_read_replica,
        read_replica_path,
        target_name,
    )
    from ingestion.warehouse.duckdb import connect

    if target_name() != "duckdb":
        wh = open_warehouse(create=False)
        try:
            yield wh
        finally:
            wh.close()
        return
    publish_read_replica()
    replica = read_replica_path()
    if not replica.exists():
        raise FileNotFoundError(f"no DuckDB read replica at {replica}: load and build the "
                                "warehouse first (tokenwatch ingest, dbt build)")
    con = connect(replica, read_only=True)
    try:
        yield _DuckDBReader(con)
    finally:
        con.close()
