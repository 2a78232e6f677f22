"""Shared by the reports API's tests: a private copy of a built DuckDB warehouse as the read
replica (the session's file is never written), and the API on it in a thread."""

from __future__ import annotations

import shutil
import uuid
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from ingestion.warehouse.duckdb import DuckDBWarehouse
from quality import verdicts
from reporting import semantic
from reporting.api.access_log import AccessLog
from reporting.api.app import create_app
from reporting.api.readers import DuckDBReader, Reader
from reporting.api.timeline import StateSource
from state_service.server import ServiceThread

KEY = "alice-key-" + uuid.uuid4().hex
OTHER_KEY = "bob-key-" + uuid.uuid4().hex
KEYS = {"alice": KEY, "bob": OTHER_KEY}
#: The world's days (tests/world.py: three days from 2026-11-02), and the verdicts recorded on
#: the copy: the first passed, the second withheld, the third never evaluated.
DAYS = (date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4))
PASSED_DAY, WITHHELD_DAY, UNCHECKED_DAY = DAYS


def replica_copy(built_path: Path, dest: Path, record_verdicts: bool = True) -> Path:
    """A copy of the built DuckDB file (its WAL too, if any), with the gate's verdicts."""
    shutil.copy2(built_path, dest)
    wal = Path(f"{built_path}.wal")
    if wal.exists():
        shutil.copy2(wal, Path(f"{dest}.wal"))
    if record_verdicts:
        wh = DuckDBWarehouse(dest)
        try:
            verdicts.record(wh, {PASSED_DAY: [("kpi_bounds", True)],
                                 WITHHELD_DAY: [("kpi_bounds", True), ("reconciliation", False)]},
                            run_id="test-run")
        finally:
            wh.close()
    return dest


@contextmanager
def serve(reader: Reader, *, state_dsn: str | None = None, access_log: AccessLog | None = None,
          max_rows: int = 500, engine: str | None = None):
    state = StateSource(state_dsn, reader.timeout_s) if state_dsn else None
    app = create_app(reader=reader, layer=semantic.for_engine(engine or reader.engine),
                     keys=KEYS, state=state, access_log=access_log, max_rows=max_rows,
                     status_ttl_s=0)
    with ServiceThread(app) as svc:
        yield svc


def duckdb_log(path: Path) -> AccessLog:
    return AccessLog(lambda: DuckDBWarehouse(path), close_after_idle_s=0.5,
                     flush_interval_s=0.1)


def duckdb_reader(path: Path, timeout_s: float = 20) -> DuckDBReader:
    return DuckDBReader(path, timeout_s)
