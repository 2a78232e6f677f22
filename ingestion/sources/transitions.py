"""State transitions from PostgreSQL into ``raw.token_state_transitions``, incrementally.

The state service's contract (state_service/migrations/0001): each row stores its writer's
transaction id. In one REPEATABLE READ snapshot we take ``xmin = pg_snapshot_xmin(...)`` and
read the rows with ``watermark <= xact_id < xmin``: every transaction below xmin has committed
or aborted, so none that commits late is skipped; it is read by the run after it commits.
Rows and the new watermark are written in one warehouse transaction per chunk; chunks are
idempotent (rows already there are skipped by transition_id), so a run killed halfway and
re-run leaves exactly the source's rows.

The rows travel as Arrow end to end: PostgreSQL's binary COPY, decoded into Arrow record
batches by the ADBC PostgreSQL driver (C, no Python per row and no text parsing), read on a
background thread while the previous chunk is written, so reading the socket and writing the
warehouse overlap.

PostgreSQL types every value, so a row can poison a load in one way only: a timestamp that
PostgreSQL holds but Arrow and the warehouses do not (``infinity``, a year past 9999 in UTC such
as ``9999-12-31T23:59:59-14:00``, a date BC). ADBC does not refuse those: it hands over a
wrapped-around or out-of-range number. So every chunk's timestamps are range-checked; a row
outside years 1..9999 is re-read as text by its transition_id and goes to ``raw.quarantine``
(once, with the field named) while the rest loads. The append-only log cannot lose such a row,
and it must not stop every later run. Only a chunk that holds one pays for the re-read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ingestion.raw_schema import QUARANTINE, TRANSITIONS
from ingestion.read_ahead import read_ahead
from ingestion.records import ARROW_TYPES, quarantine_row, to_arrow
from ingestion.warehouse.base import Warehouse

STATE_KEY = "transitions:xact_watermark"
#: Where a quarantined transition was: this prefix and its transition_id (raw.quarantine
#: location), which the reconciliation counts as accounted for.
QUARANTINE_PREFIX = "pg:token_state_transitions/"
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


def _select(columns: list[str], low: str = "%s", high: str = "%s",
            xact_id_type: str = "text", where: str = "") -> str:
    """The read of the rows with ``low <= xact_id < high`` (SQL: placeholders by default,
    literals for ADBC, which streams a query by binary COPY only when it has no parameters),
    in xact_id order, ``xact_id`` as ``xact_id_type`` and ``where`` an extra condition."""
    # Order by the table's xid8 column (t.xact_id), never by the output column of the same
    # name: as text, '1000' sorts before '999', and a chunk's watermark (the numeric max of
    # its xact ids) would then pass rows still to come. The xact_id index serves this order.
    cast = "::text" if xact_id_type == "text" else f"::text::{xact_id_type}"
    cols = ", ".join(f"t.{c}{cast} as {c}" if c == "xact_id" else f"t.{c}" for c in columns)
    return (f"select {cols} from token_state_transitions t"
            f" where {where + ' and ' if where else ''}t.xact_id >= {low}::text::xid8"
            f" and t.xact_id < {high}::text::xid8 order by t.xact_id")


def _read_csv(csv_bytes: bytes, types: dict[str, pa.DataType]) -> pa.Table:
    return pacsv.read_csv(
        pa.py_buffer(csv_bytes),  # not a Python file object: keeps the reader parallel
        read_options=pacsv.ReadOptions(column_names=SOURCE_COLUMNS),
        convert_options=pacsv.ConvertOptions(
            column_types={c: types[c] for c in SOURCE_COLUMNS}, strings_can_be_null=True,
            quoted_strings_can_be_null=False))


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


def _arrow_select(low: int, xmin: int) -> str:
    """The chunked read for ADBC: literal bounds, ``xact_id`` as bigint (the raw layer's type)."""
    return _select(SOURCE_COLUMNS, f"'{int(low)}'", f"'{int(xmin)}'", xact_id_type="bigint")


class _Snapshot:
    """One REPEATABLE READ, read-only transaction on the source over ADBC: its ``xmin`` and the
    rows below it, as Arrow tables of about ``chunk_bytes`` each, read ahead on a thread."""

    def __init__(self, dsn: str):
        import adbc_driver_postgresql.dbapi as adbc  # the driver's libpq, loaded on first use

        self.conn = adbc.connect(dsn, autocommit=True)
        self.cur = self.conn.cursor()
        self.cur.execute("begin transaction isolation level repeatable read, read only")
        self.cur.execute("select pg_snapshot_xmin(pg_current_snapshot())::text")
        self.xmin = int(self.cur.fetchone()[0])
        self._reading: Iterator[pa.Table] | None = None

    def chunks(self, low: int, chunk_bytes: int) -> Iterator[pa.Table]:
        self.cur.execute(_arrow_select(low, self.xmin))
        reader = self.cur.fetch_record_batch()
        self._reading = read_ahead(_rechunk(reader, chunk_bytes), depth=2,
                                   name="transitions-read-ahead")
        return self._reading

    def close(self) -> None:
        try:
            if self._reading is not None:  # the thread first: it may be inside the reader
                self._reading.close()
            self.cur.close()
        finally:
            self.conn.close()  # a transaction still open is rolled back: it only read

    def __enter__(self) -> _Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rechunk(batches: Iterable[pa.RecordBatch], chunk_bytes: int) -> Iterator[pa.Table]:
    """Record batches regrouped into tables of about ``chunk_bytes`` (a batch larger than that
    is sliced, down to one row per table when ``chunk_bytes`` is tiny, as tests ask)."""
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        per_row = max(1, batch.nbytes // max(1, batch.num_rows))
        offset = 0
        while offset < batch.num_rows:
            room = max(1, -(-(chunk_bytes - size) // per_row))  # rows that fill the chunk
            piece = batch.slice(offset, room)
            offset += piece.num_rows
            pending.append(piece)
            size += piece.num_rows * per_row
            if size >= chunk_bytes:
                yield pa.Table.from_batches(pending)
                pending, size = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


#: Microseconds since 1970 of 0001-01-01 and of 9999-12-31T23:59:59.999999, UTC: the range of
#: timestamps the raw layer (and Arrow's date conversions, and every warehouse) holds.
_TS_MIN, _TS_MAX = -62_135_596_800_000_000, 253_402_300_799_999_999


def out_of_range_sql() -> str:
    """PostgreSQL's condition for a source row :func:`_out_of_range` refuses: a timestamp
    before 0001-01-01 or after 9999-12-31 UTC, or infinite (the reconciliation asks it of the
    rows quarantine names, so a forged quarantine entry accounts for nothing)."""
    return "(" + " or ".join(
        f"coalesce(not isfinite({c}) or {c} < '0001-01-01 00:00:00+00' "
        f"or {c} > '9999-12-31 23:59:59.999999+00', false)" for c in _TIMESTAMPS) + ")"


def _out_of_range(table: pa.Table) -> pa.Array | None:
    """A mask of the rows with a timestamp outside the raw layer's range, or ``None``."""
    mask = None
    for column in _TIMESTAMPS:
        micros = table[column].cast(pa.int64())
        bad = pc.or_(pc.less(micros, _TS_MIN), pc.greater(micros, _TS_MAX))
        mask = bad if mask is None else pc.or_(mask, bad)
    if mask is None or not pc.any(mask).as_py():
        return None
    return pc.fill_null(mask, False)


def _quarantine_rows(source_dsn: str, ids: list[int], loaded_at: datetime, prefix: str
                     ) -> list[dict]:
    """The quarantine rows of the transitions ``ids``, re-read as PostgreSQL's text (an
    out-of-range timestamp is only faithful there)."""
    query = _select(SOURCE_COLUMNS, where="t.transition_id = any(%s)")
    buf = bytearray()
    with psycopg.connect(source_dsn) as src:
        src.execute("set timezone = 'UTC'")
        with src.cursor().copy(f"copy ({query}) to stdout (format csv)",
                               [ids, "0", str(2**63 - 1)]) as copy:
            for block in copy:
                buf += block
    _, bad, _ = _to_arrow_quarantining(bytes(buf), loaded_at, prefix)
    found = {b["location"] for b in bad}
    missing = [i for i in ids if f"{prefix}{i}" not in found]
    if missing:  # the ranges disagree: never drop a row silently
        raise RuntimeError(f"transitions {missing[:5]} have timestamps outside years 1..9999 "
                           "as Arrow but not as text; refusing to load them")
    return bad


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
    with _Snapshot(source_dsn) as snapshot:
        xmin = snapshot.xmin
        if xmin <= low:
            return result
        # one chunk held back: the last one carries the final watermark (xmin) with its rows
        held, chunks = None, 0
        for table in snapshot.chunks(low, chunk_bytes):
            if held is not None:
                chunks += 1
                _write(wh, source_dsn, held, None, result, chunks, inside_chunk)
                progress(result.rows_read)
            held = table
        chunks += 1
        _write(wh, source_dsn, held, xmin, result, chunks, inside_chunk)
        progress(result.rows_read)
    return result


def _write(wh: Warehouse, source_dsn: str, table: pa.Table | None, final_xmin: int | None,
           result: TransitionsResult, chunk: int,
           inside_chunk: Callable[[int], None] | None) -> None:
    now, prefix = datetime.now(UTC), QUARANTINE_PREFIX
    bad: list[dict] = []
    read = 0
    if table is not None and table.num_rows:
        read = table.num_rows
        chunk_max = int(pc.max(table["xact_id"]).as_py())
        refused = _out_of_range(table)
        if refused is not None:
            ids = table.filter(refused)["transition_id"].to_pylist()
            bad = _quarantine_rows(source_dsn, ids, now, prefix)
            table = table.filter(pc.invert(refused))
        table = _with_meta(table, now, prefix)
        # a partial chunk may end inside a transaction's rows: re-read from that xact_id
        watermark = final_xmin if final_xmin is not None else chunk_max
    else:
        table = None
        watermark = final_xmin if final_xmin is not None else result.watermark_to
    refused_count = len(bad)
    with wh.transaction():
        loaded = wh.append(TRANSITIONS, table) if table is not None else 0
        if bad:  # a row re-read after a partial chunk is quarantined once
            seen = {loc for (loc,) in wh.query(
                "select location from raw.quarantine where source = %s", [TRANSITIONS.name])}
            bad = [b for b in bad if b["location"] not in seen]
            wh.append(QUARANTINE, to_arrow(QUARANTINE, bad))
        if inside_chunk is not None:
            inside_chunk(chunk)
        wh.set_state(STATE_KEY, str(watermark))
    n = table.num_rows if table is not None else 0
    result.rows_read += read
    result.rows_loaded += loaded
    result.duplicates += n - loaded + refused_count - len(bad)
    result.quarantined += len(bad)
    result.watermark_to = watermark
