"""A PostgreSQL warehouse: rows go in with COPY (Arrow -> CSV -> COPY FROM STDIN)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from ingestion.raw_schema import Table
from ingestion.warehouse.base import Warehouse


class PostgresWarehouse(Warehouse):
    name = "postgres"
    type_map = {"text": "text", "bigint": "bigint", "integer": "integer",
                "double": "double precision", "boolean": "boolean",
                "timestamp": "timestamptz", "json": "jsonb"}

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute("set timezone = 'UTC'")
        self._n = 0

    def execute(self, sql: str, params: Sequence | None = None) -> int:
        cur = self.conn.execute(sql, params) if params else self.conn.execute(sql.encode())
        return cur.rowcount

    def query(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    def _begin(self) -> None:
        self.conn.execute("begin")

    def _commit(self) -> None:
        self.conn.execute("commit")

    def _rollback(self) -> None:
        if not self.conn.closed:
            self.conn.execute("rollback")

    def _stage(self, table: Table, data: pa.Table) -> str:
        self._n += 1
        name = f"_stage_{table.name}_{self._n}"
        types = {c.name: self.type_map[c.type] for c in table.columns}
        cols = ", ".join(f"{c} {types[c]}" for c in data.column_names)
        self.conn.execute(f"create temp table {name} ({cols}) on commit drop".encode())
        buf = io.BytesIO()
        pacsv.write_csv(data, buf, pacsv.WriteOptions(include_header=False,
                                                      quoting_style="needed"))
        with self.conn.cursor().copy(
                f"copy {name} ({', '.join(data.column_names)}) from stdin (format csv)".encode()
        ) as copy:
            copy.write(buf.getvalue())
        return name

    def close(self) -> None:
        self.conn.close()
