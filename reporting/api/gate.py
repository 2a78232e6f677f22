"""What every answer says about its data: how fresh it is, and each covered day's gate verdict.

* last load: the newest ``raw._ingest_state.updated_at`` (every loader moves its watermark in
  the transaction that loads its rows, so this is when rows last arrived);
* last build: the newest ``transformed_at`` of the marts that carry it (dbt stamps every row
  it writes with the invocation's start): the same SQL on DuckDB, PostgreSQL and Snowflake,
  unlike dbt's ``run_results.json``, which only exists where dbt ran;
* each day's latest verdict of the quality gate (``quality.verdicts``): ``passed``,
  ``withheld`` or ``unchecked`` (never evaluated: not published either).

Read once per replica file on DuckDB (they change only when it is replaced), else at most
every ``ttl_s`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from ingestion.raw_schema import INGEST_STATE, SCHEMA
from quality import verdicts
from reporting.api import relations
from reporting.api.readers import Reader

#: From least to most alarming: a period's status is its worst day's.
SEVERITY = (verdicts.PASSED, verdicts.UNCHECKED, verdicts.WITHHELD)


def worst(statuses: Iterable[str]) -> str | None:
    found = set(statuses)
    return max(found, key=SEVERITY.index) if found else None


def _utc(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None


@dataclass(frozen=True)
class Freshness:
    last_load_at: datetime | None
    last_build_at: datetime | None

    def as_dict(self) -> dict:
        return {"last_load_at": self.last_load_at.isoformat() if self.last_load_at else None,
                "last_build_at": self.last_build_at.isoformat() if self.last_build_at else None}

    def header(self) -> str:
        d = self.as_dict()
        return f"last_load_at={d['last_load_at'] or 'none'}; " \
               f"last_build_at={d['last_build_at'] or 'none'}"


@dataclass(frozen=True)
class _Snapshot:
    freshness: Freshness
    verdicts: dict[date, verdicts.Verdict]


class GateStatus:
    def __init__(self, reader: Reader, ttl_s: float = 5.0):
        self.reader = reader
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._key: object = None
        self._read_at = 0.0

    def _max(self, sql: str):
        try:
            rows = self.reader.query(sql)
        except Exception:  # noqa: BLE001 - a missing table: that source says nothing yet
            return None
        return _utc(rows[0][0]) if rows else None

    def _read(self) -> _Snapshot:
        load = self._max(f"select max(updated_at) from {SCHEMA}.{INGEST_STATE.name}")
        builds = [self._max(f"select max(transformed_at) from {mart}")
                  for mart in relations.built_marts()]
        build = max((b for b in builds if b is not None), default=None)
        return _Snapshot(Freshness(load, build), verdicts.latest(self.reader))

    def snapshot(self) -> _Snapshot:
        key = self.reader.generation()
        with self._lock:
            stale = (self._snapshot is None or key != self._key
                     or (key is None and time.monotonic() - self._read_at > self.ttl_s))
            if not stale:
                return self._snapshot
        snap = self._read()
        with self._lock:
            self._snapshot, self._key, self._read_at = snap, key, time.monotonic()
        return snap

    def freshness(self) -> Freshness:
        return self.snapshot().freshness

    def days(self, days: Iterable[date]) -> dict[date, verdicts.Verdict]:
        found = self.snapshot().verdicts
        return {day: found.get(day, verdicts.Verdict(day, verdicts.UNCHECKED))
                for day in sorted(set(days))}
