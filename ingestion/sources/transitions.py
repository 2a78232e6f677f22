"""State transitions from PostgreSQL into ``raw.token_state_transitions``, incrementally.

The state service's contract (state_service/migrations/0001): each row stores its writer's
transaction id. In one REPEATABLE READ snapshot we take ``xmin = pg_snapshot_xmin(...)`` and
COPY the rows with ``watermark <= xact_id < xmin``: every transaction below xmin has committed
or aborted, so none that commits late is skipped; it is read by the run after it commits.
Rows and the new watermark are written in one warehouse transaction per chunk; chunks are
idempotent (rows already there are skipped by transition_id), so a run killed halfway and
re-run leaves exactly the source's rows.

PostgreSQL types every value, so a row can poison a load in one way only: a timestamp that
PostgreSQL holds but Arrow and the warehouses do not (``infinity``, a year past 9999 in UTC such
as ``9999-12-31T23:59:59-14:00``, a date BC). The append-only log cannot lose such a row, so
it would stop every later run; when a chunk does not convert, its timestamps are read as text
and those rows go to ``raw.quarantine`` (once, with the field named) while the rest loads. The
fast path is untouched: only a chunk that fails takes the slow one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ingestion.raw_schema import QUARANTINE, TRANSITIONS
from ingestion.records import ARROW_TYPES, quarantine_row, to_arrow
from ingestion.warehouse.base import Warehouse

STATE_KEY = "transitions:xact_watermark"
SOURCE_COLUMNS = [c.name for c in TRANSITIONS.columns if not c.name.startswith("_")]
CHUNK_BYTES = 64 * 1024 * 1024
_TIMESTAMPS = [c.name for c in TRANSITIONS.columns
               if c.type == "timestamp" and c.name in SOURCE_COLUMNS]


@dataclass
class TransitionsResult:
    rows_read: int = 0
    rows_loaded: int = 0
    duplicates: int = 0
    watermark_from: int = 0
    watermark_to: int = 0
    quarantined: int = 0


def _select(columns: list[str]) -> str:
    # Order by the table's xid8 column (t.xact_id), never by the text output column of the
    # same name: text sorts '1000' before '999', and a chunk's watermark (the numeric max of
    # its xact ids) would then pass rows still to come. The xact_id index serves this order.
    cols = ", ".join(f"t.{c}::text as {c}" if c == "xact_id" else f"t.{c}" for c in columns)
    return (f"select {cols} from token_state_transitions t"
            " where t.xact_id >= %s::text::xid8 and t.xact_id < %s::text::xid8"
            " order by t.xact_id")


def _read_csv(csv_bytes: bytes, types: dict[str, pa.DataType]) -> pa.Table:
    return pacsv.read_csv(
        pa.py_buffer(csv_bytes),  # not a Python file object: keeps the reader parallel
        read_options=pacsv.ReadOptions(column_names=SOURCE_COLUMNS),
        convert_options=pacsv.ConvertOptions(
            column_types={c: types[c] for c in SOURCE_COLUMNS}, strings_can_be_null=True,
            quoted_strings_can_be_null=False))


def _to_arrow(csv_bytes: bytes, loaded_at: datetime, location_prefix: str) -> pa.Table:
    types = {c.name: ARROW_TYPES[c.type] for c in TRANSITIONS.columns}
    return _with_meta(_read_csv(csv_bytes, types), loaded_at, location_prefix)


def _with_meta(table: pa.Table, loaded_at: datetime, location_prefix: str) -> pa.Table:
    n = table.num_rows
    location = pc.binary_join_element_wise(
        pa.scalar(location_prefix), pc.cast(table["transition_id"], pa.string()), "")
    loaded = pa.repeat(pa.scalar(loaded_at, type=ARROW_TYPES["timestamp"]), n)
    return (table.append_column("_loaded_at", loaded)
            .append_column("_source_location", location))


def _to_arrow_quarantining(csv_bytes: bytes, loaded_at: datetime, location_prefix: str
                           ) -> tuple[pa.Table, list[dict], int]:
    """The slow path, for a chunk whose timestamps did not convert: (the rows that convert, the
    quarantine rows of those that do not, the chunk's highest xact_id)."""
    types = {c.name: ARROW_TYPES[c.type] for c in TRANSITIONS.columns}
    table = _read_csv(csv_bytes, types | {c: pa.string() for c in _TIMESTAMPS})
    refused: dict[int, str] = {}
    parsed: dict[str, list] = {}
    for column in _TIMESTAMPS:
        values = []
        for i, text in enumerate(table[column].to_pylist()):
            try:
                values.append(None if text is None else
                              datetime.fromisoformat(text).astimezone(UTC))
            except (ValueError, OverflowError):
                values.append(None)
                refused.setdefault(i, f"field '{column}' is {text[:40]!r}, outside the "
                                      "timestamps the raw layer holds (years 1 to 9999 in UTC)")
        parsed[column] = values
    keep = [i not in refused for i in range(table.num_rows)]
    good = table.filter(pa.array(keep, type=pa.bool_()))
    for column in _TIMESTAMPS:
        good = good.set_column(good.schema.get_field_index(column), column, pa.array(
            [v for v, k in zip(parsed[column], keep, strict=True) if k], type=types[column]))
    rows = table.to_pylist()
    bad = [quarantine_row(TRANSITIONS.name, f"{location_prefix}{rows[i]['transition_id']}",
                          json.dumps(rows[i], default=str), reason, loaded_at)
           for i, reason in sorted(refused.items())]
    chunk_max = int(pc.max(table["xact_id"]).as_py())
    return _with_meta(good, loaded_at, location_prefix), bad, chunk_max


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
    now, prefix = datetime.now(UTC), "pg:token_state_transitions/"
    table, bad, chunk_max = None, [], None
    if csv_bytes:
        try:
            table = _to_arrow(csv_bytes, now, prefix)
        except pa.ArrowInvalid:  # a timestamp out of Arrow's range: quarantine its row
            table, bad, chunk_max = _to_arrow_quarantining(csv_bytes, now, prefix)
        if chunk_max is None and table.num_rows and final_xmin is None:
            chunk_max = int(pc.max(table["xact_id"]).as_py())
    if chunk_max is not None and final_xmin is None:
        # a partial chunk may end inside a transaction's rows: re-read from that xact_id
        watermark = chunk_max
    else:
        watermark = final_xmin if final_xmin is not None else result.watermark_to
    with wh.transaction():
        loaded = wh.append(TRANSITIONS, table) if table is not None else 0
        refused = len(bad)
        if bad:  # a row re-read after a partial chunk is quarantined once
            seen = {loc for (loc,) in wh.query(
                "select location from raw.quarantine where source = %s", [TRANSITIONS.name])}
            bad = [b for b in bad if b["location"] not in seen]
            wh.append(QUARANTINE, to_arrow(QUARANTINE, bad))
        if inside_chunk is not None:
            inside_chunk(chunk)
        wh.set_state(STATE_KEY, str(watermark))
    n = table.num_rows if table is not None else 0
    result.rows_read += n + refused
    result.rows_loaded += loaded
    result.duplicates += n - loaded + refused - len(bad)
    result.quarantined += len(bad)
    result.watermark_to = watermark
