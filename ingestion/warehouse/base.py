"""The loader interface: one warehouse, three implementations (DuckDB, PostgreSQL, Snowflake).

A load writes its rows, quarantined records and watermark in one ``transaction()``: either all
of it lands or none of it does, so a killed run re-reads from the last committed watermark.
Rows arrive as Arrow tables; keyed tables (``Table.key``) skip rows whose key is already there.
SQL passed to ``execute``/``query`` uses ``%s`` placeholders on every target.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from ingestion.raw_schema import LOAD_COUNTER, LOADS, SCHEMA, TABLES, Table


class Warehouse(ABC):
    name: str = "abstract"
    type_map: dict[str, str] = {}

    # -- what each target implements ------------------------------------------------------
    @abstractmethod
    def execute(self, sql: str, params: Sequence | None = None) -> int:
        """Run a statement; return the affected row count where the target reports one."""

    @abstractmethod
    def query(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        """Run a query and fetch all rows."""

    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    @abstractmethod
    def _stage(self, table: Table, data: pa.Table) -> str:
        """Make ``data`` queryable in this transaction; return the relation's name."""

    @abstractmethod
    def close(self) -> None: ...

    def _cast(self, column: str, logical: str) -> str:
        """The expression that turns a staged column into the raw table's type."""
        return column

    # -- shared behaviour -----------------------------------------------------------------
    def ensure_named_schema(self, schema: str) -> None:
        """Create ``schema`` when it is missing (every module that owns a schema calls this)."""
        self.execute(f"create schema if not exists {schema}")

    def ddl(self) -> list[str]:
        """The raw tables' DDL (their schema: :meth:`ensure_named_schema`)."""
        statements = []
        for table in TABLES.values():
            cols = ", ".join(f"{c.name} {self.type_map[c.type]}" for c in table.columns)
            statements.append(f"create table if not exists {SCHEMA}.{table.name} ({cols})")
        return statements

    def ensure_schema(self) -> None:
        with self.transaction():
            self.ensure_named_schema(SCHEMA)
            for statement in self.ddl():
                self.execute(statement)
            self.execute(f"insert into {SCHEMA}.{LOAD_COUNTER.name} (last_seq) select 0 "
                         f"where not exists (select 1 from {SCHEMA}.{LOAD_COUNTER.name})")

    _depth: int = 0

    @contextmanager
    def transaction(self) -> Iterator[Warehouse]:
        """All or nothing. Nested use joins the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._begin()
        self._depth = 1
        self._loads = []
        try:
            yield self
            self._register_loads()
        except BaseException:
            self._depth = 0
            self._loads = []
            self._rollback()
            raise
        self._depth = 0
        self._commit()

    _loads: list[tuple[str, datetime, int]]  # (table, stamp, rows) of the open transaction

    def _register_loads(self) -> None:
        """The transaction's last step: number its loads in commit order. The counter's row
        is updated first, so a concurrent load waits here (PostgreSQL's row lock, Snowflake's
        table lock, DuckDB's one writer) until this one commits: the numbers follow the
        commits, whatever the stamps' clocks said (the incremental models' watermark:
        dbt_project/macros/numbers.sql, incremental_watermark)."""
        loads, self._loads = self._loads, []
        if not loads:
            return
        counter = f"{SCHEMA}.{LOAD_COUNTER.name}"
        self.execute(f"update {counter} set last_seq = last_seq + %s", [len(loads)])
        rows = self.query(f"select last_seq from {counter}")
        if len(rows) != 1:
            raise RuntimeError(f"{counter} must hold one row (ensure_schema writes it), "
                               f"found {len(rows)}")
        first = int(rows[0][0]) - len(loads) + 1
        now = datetime.now(UTC)
        for i, (table, stamp, count) in enumerate(loads):
            self.execute(f"insert into {SCHEMA}.{LOADS.name} (load_seq, table_name, loaded_at, "
                         "row_count, registered_at) values (%s, %s, %s, %s, %s)",
                         [first + i, table, stamp, count, now])

    def append(self, table: Table, data: pa.Table) -> int:
        """Insert ``data`` into ``raw.<table>``; rows whose key is already there are skipped.
        Returns the number of rows inserted."""
        if data.num_rows == 0:
            return 0
        with self.transaction():
            inserted = self._append(table, data)
            if inserted and "_loaded_at" in data.column_names:
                for stamp in pc.unique(data.column("_loaded_at")).to_pylist():
                    if stamp is not None:
                        self._loads.append((table.name, stamp, inserted))
            return inserted

    def _append(self, table: Table, data: pa.Table) -> int:
        staged = self._stage(table, data)
        cols = ", ".join(table.column_names)
        select = ", ".join(self._cast(f"b.{c.name}", c.type) for c in table.columns)
        sql = f"insert into {SCHEMA}.{table.name} ({cols}) select {select} from {staged} b"
        params: list = []
        if table.key:
            # the batch's key range as constants: a warehouse prunes the target to the blocks
            # (DuckDB row groups, Snowflake micro-partitions) that can hold those keys, so the
            # anti-join does not read the whole table for every batch
            span = pc.min_max(data.column(table.key)).as_py()
            narrow = ""
            if span["min"] is not None:
                narrow = f"x.{table.key} between %s and %s and "
                params = [span["min"], span["max"]]
            sql += (f" where not exists (select 1 from {SCHEMA}.{table.name} x"
                    f" where {narrow}x.{table.key} = b.{table.key})")
        return self.execute(sql, params or None)

    def get_state(self, key: str) -> str | None:
        rows = self.query(f"select value from {SCHEMA}._ingest_state where key = %s", [key])
        return rows[0][0] if rows else None

    def set_state(self, key: str, value: str) -> None:
        self.execute(f"delete from {SCHEMA}._ingest_state where key = %s", [key])
        self.execute(f"insert into {SCHEMA}._ingest_state (key, value, updated_at) "
                     "values (%s, %s, %s)", [key, value, datetime.now(UTC)])

    def count(self, table: str) -> int:
        return int(self.query(f"select count(*) from {SCHEMA}.{table}")[0][0])
