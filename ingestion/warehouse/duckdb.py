"""The embedded local default: a DuckDB file. Rows go in through Arrow, never row inserts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from ingestion.raw_schema import Table
from ingestion.warehouse.base import Warehouse


class DuckDBWarehouse(Warehouse):
    name = "duckdb"
    type_map = {"text": "VARCHAR", "bigint": "BIGINT", "integer": "INTEGER",
                "double": "DOUBLE", "boolean": "BOOLEAN", "timestamp": "TIMESTAMPTZ",
                "json": "JSON"}

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(self.path))
        if self.path.stat().st_uid == os.getuid():
            os.chmod(self.path, 0o600)  # it holds the warehouse's data: its owner's only
        self.con.execute("set timezone = 'UTC'")
        self._staged: list[str] = []

    def execute(self, sql: str, params: Sequence | None = None) -> int:
        rel = self.con.execute(sql.replace("%s", "?"), params or [])
        try:
            row = rel.fetchone()
        except duckdb.InvalidInputException:  # statements without a result
            return -1
        return int(row[0]) if row and isinstance(row[0], int) else -1

    def query(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        return self.con.execute(sql.replace("%s", "?"), params or []).fetchall()

    def _begin(self) -> None:
        self.con.execute("begin transaction")

    def _commit(self) -> None:
        self.con.execute("commit")
        self._unstage()

    def _rollback(self) -> None:
        self.con.execute("rollback")
        self._unstage()

    def _unstage(self) -> None:
        for name in self._staged:
            self.con.unregister(name)
        self._staged.clear()

    def _stage(self, table: Table, data: pa.Table) -> str:
        name = f"_stage_{table.name}_{len(self._staged)}"
        self.con.register(name, data)
        self._staged.append(name)
        return name

    def close(self) -> None:
        self.con.close()
