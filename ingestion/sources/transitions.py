"""State transitions from PostgreSQL into ``raw.token_state_transitions``, incrementally.

The state service's contract (state_service/migrations/0001): each row stores its writer's
transaction id. In one REPEATABLE READ snapshot we take ``xmin = pg_snapshot_xmin(...)`` and
COPY the rows with ``watermark <= xact_id < xmin``: every transaction below xmin has committed
or aborted, so none that commits late is skipped; it is read by the run after it commits.
Rows and the new watermark are written in one warehouse transaction per chunk; chunks are
idempotent (rows already there are skipped by transition_id), so a run killed halfway and
re-run leaves exactly the source's rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ingestion.raw_schema import TRANSITIONS
from ingestion.records import ARROW_TYPES
from ingestion.warehouse.base import Warehouse

STATE_KEY = "transitions:xact_watermark"
SOURCE_COLUMNS = [c.name for c in TRANSITIONS.columns if not c.name.startswith("_")]
CHUNK_BYTES = 64 * 1024 * 1024


@dataclass
class TransitionsResult:
    rows_read: int = 0
    rows_loaded: int = 0
    duplicates: int = 0
    watermark_from: int = 0
    watermark_to: int = 0


def _select(columns: list[str]) -> str:
    # Order by the table's xid8 column (t.xact_id), never by the text output column of the
    # same name: text sorts '1000' before '999', and a chunk's watermark (the numeric max of
    # its xact ids) would then pass rows still to come. The xact_id index serves this order.
    cols = ", ".join(f"t.{c}::text as {c}" if c == "xact_id" else f"t.{c}" for c in columns)
    return (f"select {cols} from token_state_transitions t"
            " where t.xact_id >= %s::text::xid8 and t.xact_id < %s::text::xid8"
            " order by t.xact_id")


def _to_arrow(csv_bytes: bytes, loaded_at: datetime, location_prefix: str) -> pa.Table:
    types = {c.name: ARROW_TYPES[c.type] for c in TRANSITIONS.columns}
    table = pacsv.read_csv(
        pa.py_buffer(csv_bytes),  # not a Python file object: keeps the reader parallel
        read_options=pacsv.ReadOptions(column_names=SOURCE_COLUMNS),
        convert_options=pacsv.ConvertOptions(
            column_types={c: types[c] for c in SOURCE_COLUMNS}, strings_can_be_null=True,
            quoted_strings_can_be_null=False))
    n = table.num_rows
    location = pc.binary_join_element_wise(
        pa.scalar(location_prefix), pc.cast(table["transition_id"], pa.string()), "")
    loaded = pa.repeat(pa.scalar(loaded_at, type=ARROW_TYPES["timestamp"]), n)
    return (table.append_column("_loaded_at", loaded)
            .append_column("_source_location", location))


def load_transitions(source_dsn: str, wh: Warehouse,
                     progress: Callable[[int], None] = lambda n: None,
                     inside_chunk: Callable[[int], None] | None = None,
                     chunk_bytes: int = CHUNK_BYTES) -> TransitionsResult:
    """Copy new transitions into the warehouse. ``inside_chunk(n)`` (for fault-injection
    tests) runs inside the warehouse transaction of chunk ``n``, after its rows are written
    and before its watermark and commit: a test kills the process there."""
    result = TransitionsResult()
    low = int(wh.get_state(STATE_KEY) or 0)
    result.watermark_from = result.watermark_to = low
    with psycopg.connect(source_dsn) as src:
        src.execute("set transaction isolation level repeatable read")
        src.execute("set transaction read only")
        src.execute("set timezone = 'UTC'")
        xmin = int(src.execute("select pg_snapshot_xmin(pg_current_snapshot())::text"
                               ).fetchone()[0])
        if xmin <= low:
            return result
        query = _select(SOURCE_COLUMNS)
        copy_sql = f"copy ({query}) to stdout (format csv)"
        buf, chunks = bytearray(), 0
        with src.cursor().copy(copy_sql, [str(low), str(xmin)]) as copy:
            for block in copy:  # PostgreSQL sends one row per CopyData message
                buf += block
                if len(buf) >= chunk_bytes and buf[-1] == 10:  # ends a line: whole rows only
                    head, buf = bytes(buf), bytearray()
                    chunks += 1
                    _write(wh, head, None, result, chunks, inside_chunk)
                    progress(result.rows_read)
        chunks += 1
        _write(wh, bytes(buf), xmin, result, chunks, inside_chunk)
        progress(result.rows_read)
    return result


def _write(wh: Warehouse, csv_bytes: bytes, final_xmin: int | None,
           result: TransitionsResult, chunk: int,
           inside_chunk: Callable[[int], None] | None) -> None:
    table = (_to_arrow(csv_bytes, datetime.now(UTC), "pg:token_state_transitions/")
             if csv_bytes else None)
    if table is not None and table.num_rows and final_xmin is None:
        # a partial chunk may end inside a transaction's rows: re-read from that xact_id
        watermark = int(pc.max(table["xact_id"]).as_py())
    else:
        watermark = final_xmin if final_xmin is not None else result.watermark_to
    with wh.transaction():
        loaded = wh.append(TRANSITIONS, table) if table is not None else 0
        if inside_chunk is not None:
            inside_chunk(chunk)
        wh.set_state(STATE_KEY, str(watermark))
    n = table.num_rows if table is not None else 0
    result.rows_read += n
    result.rows_loaded += loaded
    result.duplicates += n - loaded
    result.watermark_to = watermark
