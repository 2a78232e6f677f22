"""The embedded local default: a DuckDB file. Rows go in through Arrow, never row inserts.

A DuckDB file has one writer process at a time, and a process that opens it (even to read)
locks out writers in every other process. So:

* the loaders' file is private to the pipeline: each step opens it, writes, closes, and
  Dagster runs those steps one at a time (the ``warehouse`` concurrency pool, see
  ``orchestration/dagster.yaml``); opening it waits up to :data:`LOCK_WAIT_SECONDS` for another
  writer to finish, then fails naming the process that holds it;
* readers (analysts, Tableau, the demo's summary) open the **read replica** instead: a copy
  published next to the file whenever a writer closes it (:func:`publish_replica`: CHECKPOINT,
  close, copy to a temporary name, ``os.replace`` over the replica). A reader keeps the copy it
  opened; its next connection sees the new one; no reader ever holds the writers' file.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from ingestion.raw_schema import Table
from ingestion.warehouse.base import Warehouse

log = logging.getLogger(__name__)

#: How long opening the file waits for another process's lock to go before failing.
LOCK_WAIT_SECONDS = 30.0
_HOLDER = re.compile(r"Conflicting lock is held in (.+?)(?: \(PID (\d+)\))?(?:\. |\.?$)")


class WarehouseLocked(RuntimeError):
    """The DuckDB file stayed locked by another process for the whole wait."""


def _is_lock_error(error: duckdb.Error) -> bool:
    return isinstance(error, duckdb.IOException) and "Could not set lock" in str(error)


def holder(error: duckdb.Error) -> str:
    """The process DuckDB says holds the lock (``PID 123, /usr/bin/python``), else ``''``."""
    found = _HOLDER.search(str(error))
    if not found:
        return ""
    return f"PID {found[2]}, {found[1]}" if found[2] else found[1]


def connect(path: Path | str, *, read_only: bool = False,
            wait: float = LOCK_WAIT_SECONDS) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, retrying for up to ``wait`` seconds while another process holds the
    file's lock (a writer finishing its load); then :class:`WarehouseLocked`, naming it."""
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as error:
            if not _is_lock_error(error):
                raise
            if time.monotonic() >= deadline:
                who = holder(error)
                raise WarehouseLocked(
                    f"the DuckDB warehouse {path} is locked by another process"
                    f"{f' ({who})' if who else ''} and stayed locked for {wait:g}s. DuckDB "
                    "allows one writer process at a time, and any open connection (even "
                    "read-only) keeps writers out: readers should open the read replica "
                    "(TOKENWATCH_DUCKDB_REPLICA_PATH), never this file") from error
            time.sleep(min(delay, max(deadline - time.monotonic(), 0)))
            delay = min(delay * 2, 1.0)


def _fresh(source: Path, replica: Path) -> bool:
    """The replica is a copy of the file as it is now (same size and modification time)."""
    try:
        a, b = source.stat(), replica.stat()
    except FileNotFoundError:
        return False
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns


def publish_replica(source: Path | str, replica: Path | str) -> bool:
    """Copy the closed warehouse file ``source`` to ``replica`` for readers; ``True`` if a new
    copy was published, ``False`` if the replica was already current or it could not be copied
    safely now (another writer has the file: its close publishes then).

    The copy is made while this process holds a read-only connection on ``source``, so no
    writer can change it half-way; it goes to a temporary name beside the replica and replaces
    it in one ``os.replace``: a reader with the old replica open keeps reading the old file
    (its inode), a new connection opens the new one. Call it with the writer's connection
    closed (its close checkpoints the file).
    """
    source, replica = Path(source), Path(replica)
    if not source.exists() or Path(f"{source}.wal").exists():
        return False  # nothing yet, or a WAL not checkpointed (a crashed writer): not a copy
    try:
        guard = connect(source, read_only=True, wait=0)
    except (WarehouseLocked, duckdb.ConnectionException) as error:
        # another writer has the file (another process, or this one elsewhere): its close
        # publishes the replica
        log.debug("read replica not published now: %s", error)
        return False
    try:
        if _fresh(source, replica):
            return False
        replica.parent.mkdir(parents=True, exist_ok=True)
        temporary = replica.with_name(f".{replica.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            shutil.copy2(source, temporary)  # keeps the mode (owner only) and the mtime
            stale_wal = Path(f"{replica}.wal")  # a reader that wrote to the old copy
            if stale_wal.exists():
                stale_wal.unlink()
            os.replace(temporary, replica)
        finally:
            temporary.unlink(missing_ok=True)
    finally:
        guard.close()
    return True


class DuckDBWarehouse(Warehouse):
    name = "duckdb"
    type_map = {"text": "VARCHAR", "bigint": "BIGINT", "integer": "INTEGER",
                "double": "DOUBLE", "boolean": "BOOLEAN", "timestamp": "TIMESTAMPTZ",
                "json": "JSON"}

    def __init__(self, path: Path | str, *, replica: Path | str | None = None,
                 lock_wait: float = LOCK_WAIT_SECONDS):
        """Open (create) the file ``path``; with ``replica``, :meth:`close` publishes the read
        replica there (``ingestion.warehouse.open_warehouse`` passes the configured one)."""
        self.path = Path(path)
        self.replica = Path(replica) if replica else None
        self.lock_wait = lock_wait
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = connect(self.path, wait=lock_wait)
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
        try:
            self.con.execute("checkpoint")  # everything into the file before it is copied
        except duckdb.Error:
            pass  # a failed transaction still open: close rolls it back; nothing to copy
        self.con.close()
        if self.replica is not None:
            publish_replica(self.path, self.replica)
