"""Running compiled SQL where the marts are, bounded by a timeout, never writing.

* DuckDB: the **read replica** (``ingestion.warehouse.read_replica_path()``), never the file the
  pipeline writes. The replica is replaced by ``os.replace`` when a writer closes the warehouse;
  a reader checks the file's identity before each query and reopens it when it changed. It is
  ATTACHed read-only into an in-memory database of its own: ``duckdb.connect`` of the same path
  would hand back the process's cached instance of the *old* file. A query longer than the
  timeout is stopped with ``interrupt()`` from a watchdog thread, repeated every few
  milliseconds after the deadline until the fetch returns: an interrupt that lands before
  ``execute`` has started is lost, so one timer firing once is not enough under load.
* PostgreSQL: a psycopg pool whose sessions are read-only (``default_transaction_read_only``)
  with ``statement_timeout``.
* Snowflake: the connector, each statement with the connector's ``timeout`` (it cancels the
  query); read-only by the role it connects as (``TOKENWATCH_SNOWFLAKE_ROLE``: grant it select
  on the marts only).

Each reader also answers ``query(sql, params)`` with ``%s`` placeholders, as a warehouse does,
so ``quality.verdicts.latest`` reads the gate's verdicts through it.
"""

from __future__ import annotations

import os
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import duckdb


class QueryTimeout(RuntimeError):
    """The query ran longer than the reader's timeout and was stopped."""


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot answer now (no replica yet, the server is down, a mart is
    missing): the service's fault or the pipeline's, never the request's."""


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [error.__class__.__name__])[0][:300]


Rows = tuple[list[str], list[tuple]]


class Reader(ABC):
    engine: str

    def __init__(self, timeout_s: float):
        if timeout_s <= 0:
            raise ValueError(f"the query timeout must be positive, got {timeout_s}")
        self.timeout_s = timeout_s

    @abstractmethod
    def fetch(self, sql: str, params: Sequence | None = None) -> Rows:
        """``(column names, rows)``; :class:`QueryTimeout` past the timeout."""

    def query(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        return self.fetch(sql, params)[1]

    def generation(self) -> object | None:
        """Changes whenever the data may have (DuckDB: the replica file); None: unknown."""
        return None

    def close(self) -> None:
        return None


class DuckDBReader(Reader):
    engine = "duckdb"

    def __init__(self, replica: Path | str, timeout_s: float):
        super().__init__(timeout_s)
        self.path = Path(replica)
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._ident: tuple | None = None

    def _identity(self) -> tuple:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise WarehouseUnavailable(
                f"the DuckDB read replica {self.path} does not exist yet: a writer publishes it "
                "when it closes the warehouse (or run `tokenwatch ingest`)") from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def generation(self) -> object:
        return self._identity()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        ident = self._identity()
        with self._lock:
            if ident != self._ident or self._con is None:
                con = duckdb.connect(":memory:")
                con.execute("set global timezone = 'UTC'")
                path = str(self.path).replace("'", "''")
                con.execute(f"attach '{path}' as warehouse (read_only)")
                # the old connection goes when its last cursor does: queries running on the
                # old file finish on it
                self._con, self._ident = con, ident
            cur = self._con.cursor()
        cur.execute("use warehouse")
        return cur

    def fetch(self, sql: str, params: Sequence | None = None) -> Rows:
        cur = self._cursor()
        done = threading.Event()
        watchdog = threading.Thread(target=_interrupt_after, args=(cur, self.timeout_s, done),
                                    name="duckdb-query-timeout", daemon=True)
        watchdog.start()
        try:
            cur.execute(sql.replace("%s", "?"), list(params or []))
            rows = cur.fetchall()
            columns = [d[0] for d in cur.description or []]
        except duckdb.InterruptException:
            raise QueryTimeout(self.timeout_s) from None
        except duckdb.Error as error:
            raise WarehouseUnavailable(f"the DuckDB read replica could not answer: "
                                       f"{_first_line(error)}") from error
        finally:
            done.set()
            watchdog.join()
            cur.close()
        return columns, rows

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
            self._con = None


def _interrupt_after(cur: duckdb.DuckDBPyConnection, timeout_s: float,
                     done: threading.Event) -> None:
    """Interrupt ``cur`` once ``timeout_s`` has passed, and again every 5 ms until ``done``."""
    if done.wait(timeout_s):
        return
    while not done.is_set():
        cur.interrupt()
        done.wait(0.005)


class PostgresReader(Reader):
    engine = "postgres"

    def __init__(self, dsn: str, timeout_s: float, pool_size: int = 8):
        from psycopg_pool import ConnectionPool

        super().__init__(timeout_s)
        options = (f"-c statement_timeout={max(1, int(timeout_s * 1000))} "
                   "-c default_transaction_read_only=on -c TimeZone=UTC")
        self.pool = ConnectionPool(dsn, min_size=1, max_size=pool_size, open=True, timeout=5,
                                   kwargs={"autocommit": True, "options": options},
                                   name="tokenwatch-reports")

    def fetch(self, sql: str, params: Sequence | None = None) -> Rows:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self.pool.connection() as conn:
                cur = conn.execute(sql, list(params) if params else None)
                rows = cur.fetchall() if cur.description else []
                return [d.name for d in cur.description or []], rows
        except psycopg.errors.QueryCanceled:
            raise QueryTimeout(self.timeout_s) from None
        except (psycopg.Error, PoolTimeout) as error:
            raise WarehouseUnavailable(f"the PostgreSQL warehouse could not answer: "
                                       f"{_first_line(error)}") from error

    def close(self) -> None:
        self.pool.close()


class SnowflakeReader(Reader):
    engine = "snowflake"

    def __init__(self, connect_kwargs: dict, timeout_s: float, pool_size: int = 4):
        super().__init__(timeout_s)
        self._kwargs = connect_kwargs
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)

    def _connect(self):
        import snowflake.connector

        conn = snowflake.connector.connect(**self._kwargs)
        conn.autocommit(True)
        return conn

    def fetch(self, sql: str, params: Sequence | None = None) -> Rows:
        from snowflake.connector import errors

        with self._slots:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._connect()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, list(params) if params else None,
                                timeout=max(1, round(self.timeout_s)))
                    rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
                    columns = [d[0].lower() for d in cur.description or []]
            except errors.ProgrammingError as error:
                if getattr(error, "errno", None) == 604:  # the statement was cancelled
                    conn.close()
                    raise QueryTimeout(self.timeout_s) from None
                self._idle.put(conn)
                raise WarehouseUnavailable(f"the Snowflake warehouse could not answer: "
                                           f"{_first_line(error)}") from error
            except errors.Error as error:
                conn.close()
                raise WarehouseUnavailable(f"the Snowflake warehouse could not answer: "
                                           f"{_first_line(error)}") from error
            self._idle.put(conn)
            return columns, rows

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
