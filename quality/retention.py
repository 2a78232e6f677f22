"""PCI DSS 10.5.1 as checks: the audit marts hold every day of the retention window that the
source holds (12 months, or the data's whole span when shorter), and the last 90 days of it
are in the hot tier (answered by an ordinary query on the warehouse's live tables, now).

The source is the state service's transition log in PostgreSQL (read as the reader role),
below the extraction watermark (``raw._ingest_state``, as the reconciliation reads it): rows
above it are not loaded yet, which is the reconciliation's business, not retention's. A day is
held by a mart when the mart has at least one row on it. Days are UTC days of the event time
(``occurred_at``), as the marts cut them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import psycopg

from ingestion.sources.transitions import STATE_KEY
from ingestion.warehouse.base import Warehouse
from quality.result import CheckResult
from quality.verdicts import as_date

RETENTION_MONTHS = 12
HOT_DAYS = 90
#: mart -> the expression of its day: the audit marts that must hold the retention window
AUDIT_MART_DAYS = {"audit_token_transitions": "cast(occurred_at as date)",
                   "audit_daily_summary": "calendar_date"}
#: how many missing days a result names (it counts all of them)
MAX_LISTED = 31

_SOURCE_SQL = ("select distinct (occurred_at at time zone 'UTC')::date from "
               "token_state_transitions where xact_id < %s::text::xid8 "
               "and occurred_at >= %s::date and occurred_at < %s::date + 1")


def retention_start(as_of: date) -> date:
    """The first day of the 12 months that end with ``as_of`` (its day one year earlier,
    plus one: 2026-03-01 for 2027-02-28; Feb 29 counts as Feb 28)."""
    try:
        year_before = as_of.replace(year=as_of.year - 1)
    except ValueError:  # 29 February
        year_before = as_of.replace(year=as_of.year - 1, day=28)
    return year_before + timedelta(days=1)


def hot_start(as_of: date) -> date:
    """The first of the last ``HOT_DAYS`` days that end with ``as_of``."""
    return as_of - timedelta(days=HOT_DAYS - 1)


def source_days(source_dsn: str, watermark: int, start: date, end: date) -> set[date]:
    """The UTC days from ``start`` to ``end`` (inclusive) with a transition in the log below
    ``watermark``."""
    with psycopg.connect(source_dsn) as conn:
        conn.read_only = True
        rows = conn.execute(_SOURCE_SQL, [str(watermark), start, end]).fetchall()
    return {as_date(day) for (day,) in rows}


def mart_days(wh: Warehouse, relation: str, day_expression: str, start: date,
              end: date) -> set[date]:
    """The days from ``start`` to ``end`` (inclusive) on which ``relation`` has a row."""
    rows = wh.query(f"select distinct {day_expression} from {relation} "
                    f"where {day_expression} >= %s and {day_expression} <= %s", [start, end])
    return {as_date(day) for (day,) in rows}


@dataclass(frozen=True)
class Coverage:
    """What the source holds in a window and which of those days each mart lacks."""

    start: date
    end: date
    source_days: frozenset[date]
    missing: dict[str, tuple[date, ...]]  # mart -> days, sorted
    query_seconds: float  # how long the marts took to answer

    @property
    def passed(self) -> bool:
        return not any(self.missing.values())


def coverage(wh: Warehouse, relation: Callable[[str], str], source_dsn: str, start: date,
             end: date, marts: Iterable[str] = AUDIT_MART_DAYS) -> Coverage:
    """The audit marts against the source, day by day, from ``start`` to ``end``."""
    stored = wh.get_state(STATE_KEY)
    held = source_days(source_dsn, int(stored) if stored else 0, start, end)
    missing, began = {}, time.monotonic()
    for mart in marts:
        found = mart_days(wh, relation(mart), AUDIT_MART_DAYS[mart], start, end)
        missing[mart] = tuple(sorted(held - found))
    return Coverage(start, end, frozenset(held), missing, round(time.monotonic() - began, 3))


def _result(name: str, what: str, cov: Coverage) -> CheckResult:
    span = (f"{min(cov.source_days)}..{max(cov.source_days)}" if cov.source_days
            else "no day")
    metadata = {"window_start": cov.start.isoformat(), "window_end": cov.end.isoformat(),
                "source_days": len(cov.source_days), "source_span": span,
                "missing_days": sum(len(days) for days in cov.missing.values()),
                "query_seconds": cov.query_seconds,
                "missing_by_mart": {mart: [d.isoformat() for d in days[:MAX_LISTED]]
                                    for mart, days in cov.missing.items() if days}}
    if cov.passed:
        summary = (f"{name}: the audit marts hold all {len(cov.source_days)} day(s) the source "
                   f"holds in {what} {cov.start}..{cov.end} (source {span})")
    else:
        detail = "; ".join(f"{mart} lacks {len(days)} day(s): "
                           + ", ".join(d.isoformat() for d in days[:MAX_LISTED])
                           + (" ..." if len(days) > MAX_LISTED else "")
                           for mart, days in cov.missing.items() if days)
        summary = (f"{name}: of the {len(cov.source_days)} day(s) the source holds in {what} "
                   f"{cov.start}..{cov.end}, {detail}")
    return CheckResult(name, cov.passed, summary, metadata)


def retention_check(wh: Warehouse, relation: Callable[[str], str], source_dsn: str,
                    as_of: date) -> CheckResult:
    """Every day of the 12 months ending ``as_of`` that the source holds is in the marts."""
    return _result("audit_retention", f"the {RETENTION_MONTHS}-month window",
                   coverage(wh, relation, source_dsn, retention_start(as_of), as_of))


def hot_tier_check(wh: Warehouse, relation: Callable[[str], str], source_dsn: str,
                   as_of: date) -> CheckResult:
    """Every day of the last 90 days ending ``as_of`` that the source holds is answered by
    the marts, now (the query's time is in the metadata)."""
    return _result("audit_hot_tier", f"the last {HOT_DAYS} days",
                   coverage(wh, relation, source_dsn, hot_start(as_of), as_of))
