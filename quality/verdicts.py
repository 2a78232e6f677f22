"""The quality gate's verdict per day, kept in the warehouse for every reader of the marts.

The gate (orchestration/defs/gate/checks.py) decides per day partition whether its KPIs may
leave. Dagster keeps that decision in its own instance; the readers that are not Dagster (the
reports API, the Tableau extracts, the audit pack) read it here, from the warehouse they read
the marts from, so a withheld day is never shown as a published one.

``quality.gate_verdicts`` is append-only: one row per day and evaluation. A day's verdict is
its latest row. A day with no row was never evaluated (``unchecked``): it is not published
either. Statuses: ``passed`` (every check of the day passed), ``withheld`` (one failed; the
row names them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

SCHEMA = "quality"
TABLE = f"{SCHEMA}.gate_verdicts"
PASSED, WITHHELD, UNCHECKED = "passed", "withheld", "unchecked"

_DDL = [f"create table if not exists {TABLE} (day date not null, status varchar(16) not null, "
        "failed_checks varchar(4000) not null, checks integer not null, "
        "run_id varchar(64) not null, evaluated_at timestamp not null)"]


@dataclass(frozen=True)
class Verdict:
    day: date
    status: str  # passed | withheld | unchecked
    failed_checks: tuple[str, ...] = ()
    evaluated_at: datetime | None = None
    run_id: str = ""

    @property
    def published(self) -> bool:
        return self.status == PASSED

    def as_dict(self) -> dict:
        return {"day": self.day.isoformat(), "status": self.status,
                "failed_checks": list(self.failed_checks),
                "evaluated_at": self.evaluated_at.isoformat() if self.evaluated_at else None}


def ensure_table(wh) -> None:
    wh.ensure_named_schema(SCHEMA)
    for statement in _DDL:
        wh.execute(statement)


def record(wh, results: dict[date, list[tuple[str, bool]]], run_id: str) -> list[Verdict]:
    """Append one verdict per day from ``{day: [(check, passed), ...]}``, in one transaction."""
    now = datetime.now(UTC).replace(tzinfo=None)  # stored as UTC, without a zone
    verdicts = []
    ensure_table(wh)  # DDL first, on its own: Snowflake commits DDL implicitly
    with wh.transaction():
        for day, checks in sorted(results.items()):
            if not checks:
                continue  # nothing of that day was evaluated (a subset of other checks)
            failed = tuple(sorted(name for name, passed in checks if not passed))
            verdict = Verdict(day, WITHHELD if failed else PASSED, failed, now, run_id)
            wh.execute(f"insert into {TABLE} (day, status, failed_checks, checks, run_id, "
                       "evaluated_at) values (%s, %s, %s, %s, %s, %s)",
                       [day, verdict.status, json.dumps(list(failed)), len(checks),
                        run_id[:64], now])
            verdicts.append(verdict)
    return verdicts


def _exists(wh) -> bool:
    try:
        wh.query(f"select 1 from {TABLE} where 1 = 0")
    except Exception:  # noqa: BLE001 - the table is missing: no day was ever evaluated
        return False
    return True


def as_date(value) -> date:
    """A day as a warehouse returns it (DATE, TIMESTAMP or its text) as a ``date``."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def latest(wh, days: Iterable[date] | None = None) -> dict[date, Verdict]:
    """Each day's latest verdict; with ``days``, every one of them (``unchecked`` if none)."""
    found: dict[date, Verdict] = {}
    if _exists(wh):
        rows = wh.query(f"select day, status, failed_checks, evaluated_at, run_id from {TABLE} "
                        "order by evaluated_at, run_id")
        for day, status, failed, evaluated_at, run_id in rows:
            day = as_date(day)
            found[day] = Verdict(day, status, tuple(json.loads(failed or "[]")),
                                 evaluated_at, run_id)
    if days is None:
        return found
    return {day: found.get(day, Verdict(day, UNCHECKED)) for day in days}


def published_days(wh) -> set[date]:
    """The days whose latest verdict is ``passed``: the only days that may leave."""
    return {day for day, verdict in latest(wh).items() if verdict.published}
