"""An answer in the format the request's ``Accept`` asks: JSON (default), CSV, Parquet or a PNG
chart; and the headers every format carries.

JSON holds the freshness and the days' gate verdicts as fields. The other formats carry them as
response headers (and Parquet also as schema metadata, so a saved file keeps them):

* ``X-Tokenwatch-Freshness``: ``last_load_at=<ISO>; last_build_at=<ISO>`` (``none`` if unknown);
* ``X-Tokenwatch-Gate-Status``: the worst verdict of the days covered (``withheld`` >
  ``unchecked`` > ``passed``);
* ``X-Tokenwatch-Days-Passed``, ``-Days-Withheld``, ``-Days-Unchecked``: those days, as
  comma-separated days or ranges (``2026-11-02..2026-11-04``), empty when none (withheld days
  are left out of the answer: the header says which);
* ``X-Tokenwatch-Next-Cursor``: the next page's cursor, absent on the last page.

Values are normalised the same on every warehouse: the time column is a day (``YYYY-MM-DD``)
at day grain and above, an ISO instant in UTC at hour grain; a numeric column whose values are
all whole is integers, else floats.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq

JSON, CSV, PARQUET, PNG = "application/json", "text/csv", "application/vnd.apache.parquet", \
    "image/png"
#: Accept values -> the format answered.
MEDIA_TYPES = {"application/json": JSON, "text/csv": CSV, PARQUET: PARQUET,
               "application/x-parquet": PARQUET, "image/png": PNG}
WILDCARDS = {"*/*": JSON, "application/*": JSON, "text/*": CSV, "image/*": PNG}


class NotAcceptable(ValueError):
    pass


def negotiate(accept: str | None) -> str:
    """The format for an ``Accept`` header (q-values honoured; none or ``*/*``: JSON)."""
    if not accept or not accept.strip():
        return JSON
    offers = []
    for position, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        found = MEDIA_TYPES.get(media) or WILDCARDS.get(media)
        if found and q > 0:
            offers.append((-q, position, found))
    if not offers:
        raise NotAcceptable(f"cannot answer {accept[:200]!r}: ask for one of "
                            f"{', '.join(MEDIA_TYPES)}")
    return min(offers)[2]


# -- values ---------------------------------------------------------------------------------
def _utc_iso(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def time_value(value, grain: str):
    """The time column's value: a day at day grain and above, an instant at hour grain."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return _utc_iso(value) if grain == "hour" else value.date()
    if isinstance(value, date):
        return _utc_iso(datetime(value.year, value.month, value.day)) if grain == "hour" \
            else value
    return value


def day_of(value) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "")).date()


def normalise(columns: Sequence[str], rows: list[tuple], time_column: str | None,
              grain: str) -> list[list]:
    """Rows with the time column normalised and numbers made alike per column."""
    out = [list(row) for row in rows]
    for i, name in enumerate(columns):
        if name == time_column:
            for row in out:
                row[i] = time_value(row[i], grain)
            continue
        values = [row[i] for row in out if row[i] is not None]
        numeric = [v for v in values if isinstance(v, Decimal | int | float)
                   and not isinstance(v, bool)]
        if not numeric or len(numeric) != len(values):
            continue
        whole = all(isinstance(v, int) or (isinstance(v, Decimal) and v == v.to_integral_value())
                    for v in numeric)
        for row in out:
            if row[i] is not None:
                row[i] = int(row[i]) if whole else float(row[i])
    return out


def plain(value):
    """A value as JSON and CSV show it."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return _utc_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


# -- headers --------------------------------------------------------------------------------
def day_ranges(days: Sequence[date]) -> str:
    """``a..b`` for each run of consecutive days, comma-separated."""
    parts, run = [], []
    for day in sorted(set(days)):
        if run and day == run[-1] + timedelta(days=1):
            run.append(day)
            continue
        if run:
            parts.append(run)
        run = [day]
    if run:
        parts.append(run)
    return ",".join(r[0].isoformat() if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in parts)


def headers(freshness, gate: dict, next_cursor: str | None) -> dict[str, str]:
    by_status: dict[str, list[date]] = {"passed": [], "withheld": [], "unchecked": []}
    for item in gate["days"]:
        by_status[item["status"]].append(date.fromisoformat(item["day"]))
    out = {"X-Tokenwatch-Freshness": freshness.header(),
           "X-Tokenwatch-Gate-Status": gate["status"] or "none",
           "X-Tokenwatch-Days-Passed": day_ranges(by_status["passed"]),
           "X-Tokenwatch-Days-Withheld": day_ranges(
               sorted(date.fromisoformat(d) for d in gate["withheld_days"])),
           "X-Tokenwatch-Days-Unchecked": day_ranges(by_status["unchecked"])}
    if next_cursor:
        out["X-Tokenwatch-Next-Cursor"] = next_cursor
    return out


# -- bodies ---------------------------------------------------------------------------------
def to_csv(columns: Sequence[str], rows: list[list]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else plain(v) for v in row])
    return buf.getvalue().encode()


def to_parquet(columns: Sequence[str], rows: list[list], metadata: dict[str, object],
               instant_column: str | None = None) -> bytes:
    """Typed columns (days as date32, an hour grain's instants as UTC timestamps) and the
    answer's envelope as schema metadata, ``tokenwatch.<key>`` -> JSON."""
    arrays = []
    for i, name in enumerate(columns):
        values = [row[i] for row in rows]
        if name == instant_column:
            values = [datetime.fromisoformat(v.removesuffix("Z")).replace(tzinfo=UTC)
                      if isinstance(v, str) else v for v in values]
        arrays.append(pa.array(values))
    table = pa.Table.from_arrays(arrays, names=list(columns))
    table = table.replace_schema_metadata(
        {f"tokenwatch.{k}".encode(): json.dumps(v, default=str).encode()
         for k, v in metadata.items()})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()
