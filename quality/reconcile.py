"""The transition log reconciles: the warehouse holds exactly PostgreSQL's rows up to the
extraction watermark.

Both sides count the rows with ``xact_id < watermark`` (the watermark the loader stored in
``raw._ingest_state``), per ``to_state``, with the sum of ``transition_id`` as a cheap
fingerprint: a row missing on one side and another extra on the other keeps the count but
moves the sum. Rows at or above the watermark (a run that stopped between chunks) are
reported, not judged: the next run completes them.

A source row the loader refused (an impossible timestamp: a row written around the service)
is in ``raw.quarantine`` with its reason, never in the raw table: it is accounted for there,
counted in the result, and left out of the source's side, if the source row really is one
the loader refuses (a quarantine entry naming an ordinary row accounts for nothing). Without
that, one such row, which the append-only log never loses, would fail the check and withhold
every day for good.
"""

from __future__ import annotations

from typing import Any

import psycopg

from ingestion.raw_schema import QUARANTINE, SCHEMA, TRANSITIONS
from ingestion.sources.transitions import QUARANTINE_PREFIX, STATE_KEY, out_of_range_sql
from ingestion.warehouse.base import Warehouse
from quality.result import CheckResult

_SOURCE_SQL = ("select to_state, count(*), coalesce(sum(transition_id), 0)"
               " from token_state_transitions where xact_id < %s::text::xid8"
               f" and not (transition_id = any(%s) and {out_of_range_sql()}) group by to_state")
_QUARANTINED_SQL = (f"select location from {SCHEMA}.{QUARANTINE.name} where source = %s"
                    " and location like %s")
_WAREHOUSE_SQL = (f"select to_state, count(*), coalesce(sum(transition_id), 0)"
                  f" from {SCHEMA}.{TRANSITIONS.name} where xact_id < %s group by to_state")
_AHEAD_SQL = f"select count(*) from {SCHEMA}.{TRANSITIONS.name} where xact_id >= %s"

Counts = dict[str, tuple[int, int]]  # to_state -> (rows, sum of transition_id)


def source_counts(source_dsn: str, watermark: int, quarantined: list[int] | None = None
                  ) -> Counts:
    """The source's counts below ``watermark``, the ``quarantined`` transition ids left out."""
    with psycopg.connect(source_dsn) as conn:
        conn.read_only = True
        rows = conn.execute(_SOURCE_SQL, [str(watermark), quarantined or []]).fetchall()
    return {str(s): (int(n), int(total)) for s, n, total in rows}


def quarantined_ids(wh: Warehouse) -> list[int]:
    """The transition ids the loader quarantined (``pg:token_state_transitions/<id>``)."""
    rows = wh.query(_QUARANTINED_SQL, [TRANSITIONS.name, QUARANTINE_PREFIX + "%"])
    return sorted(int(loc.removeprefix(QUARANTINE_PREFIX)) for (loc,) in rows)


def warehouse_counts(wh: Warehouse, watermark: int) -> Counts:
    return {str(s): (int(n), int(total))
            for s, n, total in wh.query(_WAREHOUSE_SQL, [watermark])}


def reconcile_transitions(source_dsn: str, wh: Warehouse) -> CheckResult:
    """Compare ``raw.token_state_transitions`` with the state service's log below the
    watermark: per ``to_state`` row counts and transition_id sums must be equal."""
    name = "transitions_reconciled"
    stored = wh.get_state(STATE_KEY)
    watermark = int(stored) if stored else 0
    # both sides are fixed below a stored watermark: a concurrent load only adds rows above it
    warehouse = warehouse_counts(wh, watermark)
    ahead = int(wh.query(_AHEAD_SQL, [watermark])[0][0])
    quarantined = quarantined_ids(wh)
    source = source_counts(source_dsn, watermark, quarantined)
    differences: dict[str, dict[str, int]] = {}
    for state in sorted(set(source) | set(warehouse)):
        (s_rows, s_sum), (w_rows, w_sum) = source.get(state, (0, 0)), warehouse.get(state, (0, 0))
        if (s_rows, s_sum) != (w_rows, w_sum):
            differences[state] = {"source": s_rows, "warehouse": w_rows,
                                  "difference": w_rows - s_rows, "source_id_sum": s_sum,
                                  "warehouse_id_sum": w_sum}
    s_total = sum(n for n, _ in source.values())
    w_total = sum(n for n, _ in warehouse.values())
    metadata: dict[str, Any] = {
        "watermark": watermark, "source_rows": s_total, "warehouse_rows": w_total,
        "difference": w_total - s_total, "state_differences": differences,
        "source_rows_by_state": {s: n for s, (n, _) in sorted(source.items())},
        "warehouse_rows_by_state": {s: n for s, (n, _) in sorted(warehouse.items())},
        "warehouse_rows_at_or_above_watermark": ahead,
        "source_rows_quarantined": len(quarantined),
        "quarantined_transition_ids": quarantined[:100]}
    passed = not differences
    if passed:
        summary = (f"{name}: {w_total} rows in the warehouse equal the source's below "
                   f"watermark {watermark}" + (
                       f" ({len(quarantined)} more in raw.quarantine with their reason)"
                       if quarantined else ""))
    else:
        detail = ", ".join(f"{s} {d['warehouse']} vs {d['source']}" + (
            "" if d["difference"] else " (same count, other transition_ids)")
            for s, d in differences.items())
        summary = (f"{name}: warehouse has {w_total} rows, source {s_total} below watermark "
                   f"{watermark} (difference {w_total - s_total:+d}; by to_state, warehouse vs "
                   f"source: {detail})")
    return CheckResult(name, passed, summary, metadata)
