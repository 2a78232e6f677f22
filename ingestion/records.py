"""Turning JSON records into raw rows, or into a quarantine reason that names the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa

from ingestion.contract import REQUIRED
from ingestion.raw_schema import QUARANTINE, RAW_TEXT_LIMIT, Table
from state_service.pan import find_pan_like

ARROW_TYPES = {"text": pa.string(), "bigint": pa.int64(), "integer": pa.int32(),
               "double": pa.float64(), "boolean": pa.bool_(),
               "timestamp": pa.timestamp("us", tz="UTC"), "json": pa.string()}

#: Record fields stored under another column name.
RENAMES: dict[str, dict[str, str]] = {"lambda_logs": {"timestamp": "invoked_at"}}
_META = ("extra", "_loaded_at", "_source_location", "shard_id", "sequence_number", "arrived_at")


class BadRecord(ValueError):
    """A record that goes to quarantine; the message is the reason."""


def parse_timestamp(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise BadRecord(f"field '{field}' must be an ISO-8601 timestamp string, "
                        f"got {type(value).__name__}")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise BadRecord(f"field '{field}' is not an ISO-8601 timestamp: {value[:40]!r}") from None
    if ts.tzinfo is None:
        raise BadRecord(f"field '{field}' has no timezone")
    return ts.astimezone(UTC)


def _coerce(value: object, kind: str, field: str) -> object:
    if value is None:
        return None
    ok = {"text": isinstance(value, str),
          "integer": isinstance(value, int) and not isinstance(value, bool),
          "bigint": isinstance(value, int) and not isinstance(value, bool),
          "double": isinstance(value, int | float) and not isinstance(value, bool),
          "boolean": isinstance(value, bool)}
    if kind == "timestamp":
        return parse_timestamp(value, field)
    if kind in ok and not ok[kind]:
        raise BadRecord(f"field '{field}' must be {kind}, got {type(value).__name__}")
    return float(value) if kind == "double" else value


class RecordParser:
    """Validates records of one source against the contract and shapes them as raw rows."""

    def __init__(self, source: str, table: Table):
        self.source, self.table = source, table
        self.required = REQUIRED[source]
        self.renames = RENAMES.get(source, {})
        self.columns = {c.name: c.type for c in table.columns if c.name not in _META}

    def parse_line(self, text: str | bytes) -> dict:
        try:
            record = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRecord(f"not valid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise BadRecord(f"not a JSON object but {type(record).__name__}")
        row = self.shape(record)
        if find_pan_like(text if isinstance(text, str) else text.decode("utf-8", "replace")):
            fields = [k for k, v in record.items() if find_pan_like(json.dumps(v))]
            raise BadRecord(f"PAN-like value in field(s) {', '.join(map(repr, fields))}: "
                            "card numbers never enter the warehouse")
        return row

    def shape(self, record: dict) -> dict:
        for field, kind in self.required.items():
            if record.get(field) is None:
                raise BadRecord(f"missing required field '{field}'")
            if kind == "number":
                kind = "double"
            elif kind == "int":
                kind = "integer"
            elif kind == "str":
                kind = "text"
            _coerce(record[field], kind, field)
        row: dict = {}
        extra = {}
        for key, value in record.items():
            column = self.renames.get(key, key)
            if column in self.columns:
                row[column] = _coerce(value, self.columns[column], key)
            else:
                extra[key] = value
        row["extra"] = json.dumps(extra, sort_keys=True) if extra else None
        return row


def to_arrow(table: Table, rows: list[dict]) -> pa.Table:
    """Rows (dicts keyed by column name, missing = NULL) as an Arrow table of ``table``."""
    arrays = [pa.array([r.get(c.name) for r in rows], type=ARROW_TYPES[c.type])
              for c in table.columns]
    return pa.Table.from_arrays(arrays, names=table.column_names)


def quarantine_row(source: str, location: str, raw: str | bytes, reason: str,
                   loaded_at: datetime) -> dict:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    for pan in find_pan_like(raw):  # a card number never enters the warehouse
        raw = raw.replace(pan, "[PAN-REDACTED]")
    return {"source": source, "location": location, "raw_text": raw[:RAW_TEXT_LIMIT],
            "reason": reason, "_loaded_at": loaded_at}


def quarantine_table(rows: list[dict]) -> pa.Table:
    return to_arrow(QUARANTINE, rows)
