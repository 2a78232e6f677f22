"""Every request to the reports API, for the compliance pack: who, when, what, how it ended.

Table ``reports.access_log`` (one row a request, failed authentication included: who is then
``anonymous`` or ``invalid``):

==============  ==========================================================================
request_id      a random id of the request (also the ``X-Request-Id`` response header)
requested_at    when it arrived (UTC)
who             the name of the key (``TOKENWATCH_REPORT_KEYS``), ``anonymous``, ``invalid``
method, path    the HTTP method and path (a timeline's path holds the token_ref: a keyed hash)
query           the query parameters, or the JSON body's fields, as JSON (PANs redacted)
metrics         the metrics asked, comma-separated
status          the HTTP status answered
rows_returned   rows in the answer (a page of a query, a timeline's entries; 0 on errors)
duration_ms     time spent answering
response_format the answer's media type
==============  ==========================================================================

Where it lives: on PostgreSQL and Snowflake, in the warehouse (schema ``reports``), written
through a connection of its own. On DuckDB the pipeline owns the warehouse file (one writer
process at a time) and the service only reads the read replica, which every publish replaces:
the service cannot write there, so the log is a DuckDB file of its own beside the warehouse
(``TOKENWATCH_REPORTS_ACCESS_LOG_PATH``, default ``reports-access.duckdb``), with the same table.
The service keeps that file open while requests come (opening and closing a DuckDB file costs
~15 ms, too much to do per batch) and closes it after :data:`DUCKDB_IDLE_CLOSE_S` without a
request, so :func:`read_access_log` in another process (the compliance pack) reads it when the
service is idle or stopped; it waits for the lock up to 30 s.

Writes never hold a request up: requests put their row on a queue, a background thread writes
them in batches (every ``flush_interval_s`` or ``max_batch`` rows, one INSERT a batch), and
closing the log (the service's shutdown) writes what is left. A failed write keeps the rows
for the next attempt (up to ``MAX_PENDING``; beyond, the oldest go and a warning says so).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, fields
from datetime import datetime
from pathlib import Path

from ingestion.warehouse.base import Warehouse
from tokenwatch import pan

log = logging.getLogger("tokenwatch.reports.access_log")

SCHEMA = "reports"
TABLE = f"{SCHEMA}.access_log"
FILE_NAME = "reports-access.duckdb"
MAX_PENDING = 100_000
#: How long the DuckDB log file stays open without a row to write.
DUCKDB_IDLE_CLOSE_S = 2.0


@dataclass(frozen=True)
class AccessEntry:
    request_id: str
    requested_at: datetime  # UTC, without a zone
    who: str
    method: str
    path: str
    query: str
    metrics: str
    status: int
    rows_returned: int
    duration_ms: float
    response_format: str


COLUMNS = tuple(f.name for f in fields(AccessEntry))
_TYPES = {"request_id": "varchar(32)", "requested_at": "timestamp", "who": "varchar(64)",
          "method": "varchar(16)", "path": "varchar(1000)", "query": "varchar(4000)",
          "metrics": "varchar(1000)", "status": "integer", "rows_returned": "integer",
          "duration_ms": "double precision", "response_format": "varchar(100)"}
_DDL = [f"create table if not exists {TABLE} ("
        + ", ".join(f"{c} {_TYPES[c]}" for c in COLUMNS) + ")"]


def query_text(params: dict) -> str:
    """The request's parameters as stored: JSON, PAN-like values redacted, truncated."""
    return pan.redact(json.dumps(params, default=str, sort_keys=True))[:4000]


def ensure_table(wh: Warehouse) -> None:
    wh.ensure_named_schema(SCHEMA)
    for statement in _DDL:
        wh.execute(statement)


def default_path() -> Path:
    """``TOKENWATCH_REPORTS_ACCESS_LOG_PATH``, default beside the DuckDB warehouse file."""
    from ingestion.warehouse import duckdb_path
    from tokenwatch import config

    return config.settings().reports_access_log_path or duckdb_path().with_name(FILE_NAME)


def opener_from_env(target: str) -> tuple[Callable[[], Warehouse], float | None]:
    """``(open a connection that may write the log, close it after so many idle seconds)``."""
    if target == "duckdb":
        from ingestion.warehouse.duckdb import DuckDBWarehouse

        path = default_path()
        return (lambda: DuckDBWarehouse(path)), DUCKDB_IDLE_CLOSE_S
    from ingestion.warehouse import open_warehouse

    return (lambda: open_warehouse(target, create=False)), None


class AccessLog:
    """The background writer (see the module docstring)."""

    def __init__(self, opener: Callable[[], Warehouse], *,
                 close_after_idle_s: float | None = None, flush_interval_s: float = 0.5,
                 max_batch: int = 500):
        """``close_after_idle_s``: close the connection after that long without a row (None:
        keep it open until :meth:`close`)."""
        self._open, self._idle_close = opener, close_after_idle_s
        self._last_write = 0.0
        self.flush_interval_s, self.max_batch = flush_interval_s, max_batch
        self._queue: queue.Queue = queue.Queue()
        self._pending: list[AccessEntry] = []
        self._wh: Warehouse | None = None
        self._ready = False
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def start(self) -> AccessLog:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="tokenwatch-reports-access-log")
            self._thread.start()
        return self

    def record(self, entry: AccessEntry) -> None:
        self._queue.put(entry)

    def flush(self, timeout: float = 30) -> None:
        """Block until every row recorded so far is written (or the attempt failed)."""
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            raise TimeoutError("the access log did not flush in time")

    def close(self, timeout: float = 30) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    # -- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        while not stop:
            waiters: list[threading.Event] = []
            try:
                item = self._queue.get(timeout=self.flush_interval_s)
            except queue.Empty:
                item = False
            while item is not False:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    self._pending.append(item)
                if len(self._pending) >= self.max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = False
            if self._pending:
                self._write()
            elif (self._wh is not None and self._idle_close is not None
                  and time.monotonic() - self._last_write >= self._idle_close):
                self._disconnect()
            for waiter in waiters:
                waiter.set()
        self._disconnect()

    def _write(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            try:
                wh = self._connection()
                row = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
                with wh.transaction():
                    wh.execute(f"insert into {TABLE} ({', '.join(COLUMNS)}) values "
                               + ", ".join([row] * len(batch)),
                               [value for entry in batch for value in astuple(entry)])
            except Exception as error:  # noqa: BLE001 - kept for the next attempt; never raised
                log.warning("the reports access log could not be written (%s): %d rows kept "
                            "for the next attempt", error.__class__.__name__,
                            len(self._pending))
                self._disconnect()
                if len(self._pending) > MAX_PENDING:
                    extra = len(self._pending) - MAX_PENDING
                    del self._pending[:extra]
                    self.dropped += extra
                    log.error("the reports access log dropped %d rows", extra)
                return
            del self._pending[: len(batch)]
            self._last_write = time.monotonic()
        if self._idle_close == 0:
            self._disconnect()

    def _connection(self) -> Warehouse:
        if self._wh is None:
            self._wh = self._open()
            if not self._ready:
                ensure_table(self._wh)
                self._ready = True
        return self._wh

    def _disconnect(self) -> None:
        if self._wh is not None:
            try:
                self._wh.close()
            except Exception:  # noqa: BLE001 - it is gone either way
                pass
            self._wh = None


def read_access_log(source: Warehouse | Path | str | None = None, *, who: str | None = None,
                    limit: int = 10_000) -> list[dict]:
    """The access log's newest rows first, as dicts: from ``source`` (an open warehouse, or
    the DuckDB log file), else where the configured target keeps it (DuckDB: the log file
    beside the warehouse, read-only; PostgreSQL, Snowflake: ``reports.access_log``)."""
    opened: Warehouse | None = None
    if source is None:
        from ingestion.warehouse import target_name

        target = target_name()
        source = default_path() if target == "duckdb" else None
        if source is None:
            opened = opener_from_env(target)[0]()
    sql = f"select {', '.join(COLUMNS)} from {TABLE}"
    params: list = []
    if who is not None:
        sql += " where who = %s"
        params.append(who)
    sql += f" order by requested_at desc, request_id limit {int(limit)}"
    if isinstance(source, str | Path):
        if not Path(source).exists():
            return []
        con = _open_read_only(Path(source))
        try:
            cur = con.execute(sql.replace("%s", "?"), params)
            rows = cur.fetchall()
        except Exception as error:  # noqa: BLE001 - no table yet: nothing was logged
            if "does not exist" in str(error):
                return []
            raise
        finally:
            con.close()
    else:
        wh = opened or source
        try:
            rows = wh.query(sql, params)
        finally:
            if opened is not None:
                opened.close()
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


def _open_read_only(path: Path, wait: float = 30.0):
    """The DuckDB log file, read-only, once its writer lets go: another process's lock, or
    this process's own open connection (DuckDB refuses a second, read-only, configuration of
    a file it has open), is waited for up to ``wait`` seconds (the writer closes it when idle).
    """
    import duckdb

    from ingestion.warehouse.duckdb import connect

    deadline = time.monotonic() + wait
    while True:
        try:
            return connect(path, read_only=True, wait=max(deadline - time.monotonic(), 0))
        except duckdb.ConnectionException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
