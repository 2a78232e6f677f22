"""What the pack shows, read from the warehouse (the marts and the raw layer), the state
service's database (as the read-only role) and the reports API's access log.

Days are UTC days of business time: a transition's ``occurred_at``, a wallet event's
``event_time``, a lake object's ``dt=`` partition, an exception's ``observed_date``, an access
record's ``requested_at``. Bounds are passed as timezone-aware timestamps, never cast in SQL, so
a session's time zone changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from ingestion.accounting import _quarantined_transition_ids as quarantined_transition_ids
from ingestion.contract import S3_PREFIXES
from ingestion.raw_schema import SCHEMA, TRANSITIONS
from ingestion.sources.transitions import STATE_KEY
from quality import verdicts
from quality.verdicts import as_date
from state_service.lifecycle import State

Relation = Callable[[str], str]


@dataclass
class Table:
    """One evidence table: the CSV file it is written to, its columns and rows."""

    file: str
    columns: tuple[str, ...]
    rows: list[tuple] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    def __post_init__(self):
        if self.end < self.start:
            raise ValueError(f"the period ends ({self.end}) before it starts ({self.start})")

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """[start 00:00 UTC, the day after end 00:00 UTC)"""
        return (datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC),
                datetime(self.end.year, self.end.month, self.end.day, tzinfo=UTC)
                + timedelta(days=1))

    def __str__(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    first = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return first, first + timedelta(days=1)


def per_day(wh, table: str, column: str, days: list[date], where: str = "",
            params: Sequence = ()) -> dict[date, int]:
    """Rows of ``table`` per UTC day of the timestamp ``column``: one scan, one sum per day."""
    sums, bounds = [], []
    for day in days:
        sums.append(f"sum(case when {column} >= %s and {column} < %s then 1 else 0 end)")
        bounds += list(_day_bounds(day))
    first, last = _day_bounds(days[0])[0], _day_bounds(days[-1])[1]
    sql = (f"select {', '.join(sums)} from {table} where {column} >= %s and {column} < %s"
           + (f" and {where}" if where else ""))
    (row,) = wh.query(sql, [*bounds, first, last, *params])
    return {day: int(v or 0) for day, v in zip(days, row, strict=True)}


def _partition_day(column: str) -> str:
    """The ``dt=YYYY-MM-DD`` partition of a lake key or location, as text (portable SQL)."""
    return f"substr({column}, position('dt=' in {column}) + 3, 10)"


# -- reconciliation -------------------------------------------------------------------------
def watermark(wh) -> int:
    rows = wh.query(f"select value from {SCHEMA}._ingest_state where key = %s", [STATE_KEY])
    return int(rows[0][0]) if rows and rows[0][0] else 0


def transitions_per_day(wh, relation: Relation, period: Period,
                        pg_dsn: str | None) -> tuple[Table, dict]:
    days = period.days
    mark = watermark(wh)
    raw_table = f"{SCHEMA}.{TRANSITIONS.name}"
    raw = per_day(wh, raw_table, "occurred_at", days, "xact_id < %s", [mark])
    raw_all = per_day(wh, raw_table, "occurred_at", days)
    mart_rows = wh.query(f"select occurred_date, count(*) from "
                         f"{relation('fct_token_state_transitions')} where occurred_date >= %s "
                         "and occurred_date <= %s group by occurred_date",
                         [period.start, period.end])
    mart = {as_date(d): int(n) for d, n in mart_rows}
    quarantined = quarantined_transition_ids(wh)
    pg: dict[date, int] | None = None
    unreachable = ""
    if pg_dsn is not None:
        first, last = period.bounds
        try:
            with psycopg.connect(pg_dsn, options="-c TimeZone=UTC", connect_timeout=10) as conn:
                conn.read_only = True
                found = conn.execute(
                    "select (occurred_at at time zone 'UTC')::date, count(*) from "
                    "token_state_transitions where xact_id < %s::text::xid8 and occurred_at >= "
                    "%s and occurred_at < %s and not (transition_id = any(%s)) group by 1",
                    [str(mark), first, last, quarantined]).fetchall()
            pg = {d: int(n) for d, n in found}
        except psycopg.OperationalError as exc:
            unreachable = f" PostgreSQL could not be read: {_first(exc)}."
    table = Table("reconciliation_per_day.csv", (
        "day", "postgresql", "raw_layer", "raw_at_or_above_watermark", "marts", "agrees"))
    for day in days:
        p = None if pg is None else pg.get(day, 0)
        ahead = raw_all[day] - raw[day]
        agrees = (mart.get(day, 0) == raw_all[day]) and (p is None or p == raw[day])
        table.rows.append((day, "not checked" if p is None else p, raw[day], ahead,
                           mart.get(day, 0), "yes" if agrees else "no"))
    table.note = (f"Transitions by the UTC day they occurred, below the extraction watermark "
                  f"(xact {mark}); PostgreSQL's count leaves out the {len(quarantined)} "
                  "quarantined transition(s) (section 4). The marts: fct_token_state_transitions."
                  + unreachable)
    totals = {"watermark": mark, "postgresql": None if pg is None else sum(pg.values()),
              "raw_layer": sum(raw.values()), "marts": sum(mart.values()),
              "quarantined_transitions": len(quarantined),
              "checked_against_postgresql": pg is not None,
              "agrees": all(r[-1] == "yes" for r in table.rows)}
    return table, totals


def wallet_events(wh, period: Period) -> tuple[Table, dict]:
    loaded = per_day(wh, f"{SCHEMA}.wallet_events", "event_time", period.days)
    ledger = {"read": 0, "loaded": 0, "duplicates": 0, "quarantined": 0}
    streams = []
    for key, value in wh.query(f"select key, value from {SCHEMA}._ingest_state "
                               "where key like %s order by key", ["kinesis:%:ledger"]):
        streams.append(key.split(":")[1])
        for name, count in json.loads(value).items():
            ledger[name] = ledger.get(name, 0) + int(count)
    (rows,), = wh.query(f"select count(*) from {SCHEMA}.wallet_events")
    (bad,), = wh.query(f"select count(*) from {SCHEMA}.quarantine where source = %s",
                       ["wallet_events"])
    balanced = (ledger["read"] == ledger["loaded"] + ledger["duplicates"] + ledger["quarantined"]
                and ledger["loaded"] == int(rows) and ledger["quarantined"] == int(bad))
    table = Table("wallet_events_per_day.csv", ("day", "loaded"),
                  [(day, loaded[day]) for day in period.days])
    table.note = ("Wallet events loaded, by the UTC day of their event_time. Kinesis keeps no "
                  "day for a record refused or skipped as a duplicate: those are the ledger's "
                  "totals since the stream was first read.")
    totals = {"streams": streams, "ledger": ledger, "rows_in_raw": int(rows),
              "quarantined_in_raw": int(bad), "balanced": balanced,
              "loaded_in_period": sum(loaded.values())}
    return table, totals


def lake(wh, period: Period) -> tuple[Table, dict]:
    day = _partition_day("s3_key")
    manifest = {r[0]: r[1:] for r in wh.query(
        f"select {day}, count(*), sum(case when duplicate_of is null then 0 else 1 end), "
        f"coalesce(sum(rows_loaded), 0), coalesce(sum(rows_quarantined), 0) "
        f"from {SCHEMA}._s3_manifest group by {day}")}
    in_tables: dict[str, int] = {}
    for name in S3_PREFIXES:
        loc = _partition_day("_source_location")
        for d, n in wh.query(f"select {loc}, count(*) from {SCHEMA}.{name} group by {loc}"):
            in_tables[d] = in_tables.get(d, 0) + int(n)
    marks = ", ".join(["%s"] * len(S3_PREFIXES))
    loc = _partition_day("location")
    refused = {d: int(n) for d, n in wh.query(
        f"select {loc}, count(*) from {SCHEMA}.quarantine where source in ({marks}) "
        f"group by {loc}", list(S3_PREFIXES))}
    table = Table("lake_per_day.csv", (
        "day", "objects", "duplicate_objects", "lines_loaded", "rows_in_tables",
        "lines_quarantined", "quarantine_rows", "agrees"))
    for d in period.days:
        key = d.isoformat()
        objects, dupes, loaded, quarantined = (int(v or 0) for v in manifest.get(key,
                                                                                 (0, 0, 0, 0)))
        agrees = loaded == in_tables.get(key, 0) and quarantined == refused.get(key, 0)
        table.rows.append((d, objects, dupes, loaded, in_tables.get(key, 0), quarantined,
                           refused.get(key, 0), "yes" if agrees else "no"))
    table.note = ("Lake objects by their dt= partition: the manifest's lines loaded and "
                  "quarantined against the rows of raw.apigw_logs and raw.lambda_logs and of "
                  "raw.quarantine from those objects.")
    totals = {"objects": sum(r[1] for r in table.rows), "lines": sum(r[3] for r in table.rows),
              "agrees": all(r[-1] == "yes" for r in table.rows)}
    return table, totals


# -- exceptions and lifecycle ---------------------------------------------------------------
EXCEPTION_COLUMNS = ("exception_type", "severity", "token_ref", "wallet_id", "token_version",
                     "observed_at", "source_table", "source_location", "column_name",
                     "evidence")


def exceptions(wh, relation: Relation, period: Period) -> tuple[Table, Table]:
    rows = wh.query(f"select {', '.join(EXCEPTION_COLUMNS)} from {relation('audit_exceptions')} "
                    "where observed_date >= %s and observed_date <= %s "
                    "order by exception_type, observed_at, source_location",
                    [period.start, period.end])
    by_type = wh.query(f"select exception_type, max(severity), sum(findings), "
                       f"sum(tokens_affected) from {relation('audit_daily_summary')} "
                       "where calendar_date >= %s and calendar_date <= %s "
                       "group by exception_type order by exception_type",
                       [period.start, period.end])
    found = Table("exceptions.csv", EXCEPTION_COLUMNS, [tuple(r) for r in rows],
                  "Every audit_exceptions row observed in the period, with its evidence.")
    summary = Table("exceptions_by_type.csv", ("exception_type", "severity", "findings",
                                               "tokens_affected"),
                    [(t, s, int(n or 0), int(k or 0)) for t, s, n, k in by_type])
    return found, summary


def exceptions_per_day(wh, relation: Relation, period: Period) -> list[tuple]:
    return [(as_date(d), t, int(n or 0)) for d, t, n in wh.query(
        f"select calendar_date, exception_type, findings from "
        f"{relation('audit_daily_summary')} where calendar_date >= %s and calendar_date <= %s "
        "order by calendar_date, exception_type", [period.start, period.end])]


def covered_days(wh, relation: Relation, period: Period) -> set[date]:
    """The days of the period the audit marts hold (audit_daily_summary has every day of the
    data, zeros included)."""
    return {as_date(d) for (d,) in wh.query(
        f"select distinct calendar_date from {relation('audit_daily_summary')} "
        "where calendar_date >= %s and calendar_date <= %s", [period.start, period.end])}


def quarantine(wh) -> Table:
    rows = wh.query(f"select source, reason, count(*), min(location) from {SCHEMA}.quarantine "
                    "group by source, reason order by source, count(*) desc, reason")
    return Table("quarantine_by_source_and_reason.csv",
                 ("source", "reason", "records", "first_location"),
                 [(s, r, int(n), loc) for s, r, n, loc in rows],
                 "Every record ingestion refused, to date (a Kinesis record keeps no event day)"
                 ", by source and reason.")


SUSPENDED, ACTIVE, DEACTIVATED = (State.TOKEN_SUSPENDED.value, State.TOKEN_ACTIVE.value,
                                  State.TOKEN_DEACTIVATED.value)


def lifecycle_actions(wh, relation: Relation, period: Period) -> Table:
    action = (f"case when to_state = '{SUSPENDED}' then 'suspension' "
              f"when to_state = '{DEACTIVATED}' then 'deactivation' else 'resume' end")
    rows = wh.query(
        f"select {action}, actor, coalesce(reason_code, '(none)'), count(*), "
        f"count(distinct token_ref) from {relation('fct_token_state_transitions')} "
        "where occurred_date >= %s and occurred_date <= %s and (to_state in (%s, %s) or "
        "(to_state = %s and from_state = %s)) group by 1, 2, 3 order by 1, 2, 3",
        [period.start, period.end, SUSPENDED, DEACTIVATED, ACTIVE, SUSPENDED])
    return Table("lifecycle_actions.csv", ("action", "actor", "reason_code", "transitions",
                                           "tokens"),
                 [(a, who, why, int(n), int(t)) for a, who, why, n, t in rows],
                 "Suspensions, resumes (TokenSuspended -> TokenActive) and deactivations in "
                 "the period, by actor and reason code.")


def past_expiry(found: Table) -> Table:
    at = found.columns.index("exception_type")
    rows = [r for r in found.rows if r[at] == "token_active_past_expiry"]
    return Table("tokens_active_past_expiry.csv", found.columns, rows,
                 "Expiry in this data is the TokenExpired transition (the data holds no expiry "
                 "date): a token_used authorisation after it is a token active past expiry. A "
                 "token past a card's expiry date with no TokenExpired transition cannot be "
                 "seen here.")


def event_fields(wh, relation: Relation, period: Period) -> dict:
    """Transitions of the period lacking a field 10.2.2 asks for, and lacking recorded_at."""
    first, last = period.bounds
    (total, missing, unrecorded), = wh.query(
        "select count(*), sum(case when token_ref is null or event_id is null or to_state is "
        "null or actor is null or occurred_at is null or recorded_at is null or "
        "source_location is null then 1 else 0 end), sum(case when recorded_at is null then 1 "
        f"else 0 end) from {relation('audit_token_transitions')} "
        "where occurred_at >= %s and occurred_at < %s", [first, last])
    return {"transitions": int(total), "missing_a_field": int(missing or 0),
            "without_recorded_at": int(unrecorded or 0)}


# -- reviews and access ---------------------------------------------------------------------
def reviews(wh, period: Period) -> Table:
    found = verdicts.latest(wh, period.days)
    return Table("reviews.csv", ("day", "status", "failed_checks", "evaluated_at", "run_id"),
                 [(d, v.status, "; ".join(v.failed_checks), v.evaluated_at or "", v.run_id)
                  for d, v in sorted(found.items())],
                 "The quality gate's latest verdict per day (quality.gate_verdicts): the "
                 "automated daily review. unchecked: no evaluation was recorded for the day.")


ACCESS_COLUMNS = ("requested_at", "who", "method", "path", "metrics", "status",
                  "rows_returned", "response_format")
#: How many access records a pack reads at most (newest first); more is said, not hidden.
ACCESS_LIMIT = 500_000


def access_records(source, period: Period) -> tuple[Table, Table, Table, str | None]:
    """(records, by who and report, failed authentications, why there are none or None)."""
    from reporting.api.access_log import read_access_log

    missing = None
    rows: list[dict] = []
    if isinstance(source, str | Path) and not Path(source).exists():
        missing = f"no access log found (no file {source})"
    else:
        try:
            rows = read_access_log(source, limit=ACCESS_LIMIT)
        except Exception as error:  # noqa: BLE001 - no table: nothing was ever logged there
            missing = f"no access log found ({error.__class__.__name__}: {_first(error)})"
    first, last = (b.replace(tzinfo=None) for b in period.bounds)
    inside = [r for r in rows if first <= _naive(r["requested_at"]) < last]
    inside.sort(key=lambda r: (_naive(r["requested_at"]), r["path"]))
    records = Table("access_records.csv", ACCESS_COLUMNS,
                    [tuple(r[c] for c in ACCESS_COLUMNS) for r in inside],
                    missing or "Every request to the reports API in the period (UTC).")
    if len(rows) >= ACCESS_LIMIT:
        records.note += f" Only the newest {ACCESS_LIMIT:,} records of the log were read."
    grouped: dict[tuple, list] = {}
    for r in inside:
        key = (r["who"], r["path"], r["metrics"] or "")
        entry = grouped.setdefault(key, [0, 0])
        entry[0] += 1
        entry[1] += 1 if int(r["status"]) < 400 else 0
    by_who = Table("access_by_who_and_report.csv", ("who", "path", "metrics", "requests",
                                                    "answered"),
                   [(*k, n, ok) for k, (n, ok) in sorted(grouped.items())])
    failed = Table("failed_authentications.csv", ACCESS_COLUMNS,
                   [tuple(r[c] for c in ACCESS_COLUMNS) for r in inside
                    if int(r["status"]) in (401, 403)],
                   "Reports API requests refused for a missing, unknown or insufficient key "
                   "(the state service's are in service_refused_requests.csv).")
    return records, by_who, failed, missing


REFUSALS_COLUMNS = ("minute", "status", "method", "path", "client", "attempts", "first_at",
                    "last_at")
REFUSALS_NOT_READ = "Not read:"


def service_refusals(pg_dsn: str | None, period: Period) -> Table:
    """The state service's refused requests (401, 403) of the period, per minute, status,
    method, path and client: ``auth_failures`` in PostgreSQL (state_service/auth_failures.py)."""
    name = "service_refused_requests.csv"
    if pg_dsn is None:
        return Table(name, REFUSALS_COLUMNS, [],
                     f"{REFUSALS_NOT_READ} PostgreSQL was not given to this pack.")
    import psycopg

    first, last = period.bounds
    try:
        with psycopg.connect(pg_dsn, connect_timeout=10) as conn:
            rows = conn.execute(
                f"select {', '.join(REFUSALS_COLUMNS)} from auth_failures "
                "where minute >= %s and minute < %s order by minute, status, method, path, "
                "client", [first, last]).fetchall()
    except psycopg.Error as error:
        return Table(name, REFUSALS_COLUMNS, [],
                     f"{REFUSALS_NOT_READ} {error.__class__.__name__}: {_first(error)}")
    return Table(name, REFUSALS_COLUMNS, [tuple(r) for r in rows],
                 "Every request the state service refused in the period (401: no or an unknown "
                 "key; 403: a read key writing), counted per minute (UTC); paths redacted by "
                 "the PAN rule.")


def _first(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0][:200]


def _naive(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


